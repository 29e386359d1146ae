"""CPU latency of an exported cloudmask model vs ukis-csmask on the same 512x512 chip, in one process.

    python -m cloudmask.train.latency models/cloudmask-6b/1 [--threads 2] [--repeats 7]

ukis-csmask's ONNX nets take fixed 256x256 tiles, so its time for a 512 chip is given two ways: the bare
ONNX session.run over the four 256 tiles of the chip (a lower bound), and its `CSmask` API end to end (overlapping
tiles + blending, what a user calls). Ours: the SavedModel's serving_default on the whole chip. Runs alternate
so that load from other processes hits both alike; medians are reported. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--csmask", action="store_true", help="also time ukis-csmask's CSmask API end to end")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import onnxruntime as ort
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from cloudmask.contract import read_contract
    from cloudmask.paths import ukis_dir as _ukis_dir

    contract, _ = read_contract(a.model_dir)
    nb = contract.n_bands
    rng = np.random.default_rng(0)
    chip = rng.uniform(0.02, 0.6, (512, 512, nb)).astype(np.float32)

    sig = tf.saved_model.load(str(a.model_dir)).signatures["serving_default"]
    x = tf.constant(chip[None])
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    onnx_path = _ukis_dir() / f"model_{nb}b_l2a.onnx"
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    tiles = np.moveaxis(chip.reshape(2, 256, 2, 256, nb).transpose(0, 2, 1, 3, 4).reshape(4, 256, 256, nb), -1, 1).copy()
    iname = sess.get_inputs()[0].name

    def ours():
        sig(**{contract.input_name: x})[contract.output_name].numpy()

    def ukis():
        sess.run(None, {iname: tiles})

    ours(), ukis()  # warm up
    t_ours, t_ukis = [], []
    for _ in range(a.repeats):
        for f, acc in ((ours, t_ours), (ukis, t_ukis)):
            t = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t)
    res = {"model": contract.name, "chip": "512x512", "threads": a.threads, "repeats": a.repeats,
           "ours_s": statistics.median(t_ours), "ukis_onnx_4tiles_s": statistics.median(t_ukis),
           "ukis_model": onnx_path.name}
    res["ratio_vs_onnx"] = res["ours_s"] / res["ukis_onnx_4tiles_s"]
    if a.csmask:
        from ukis_csmask.mask import CSmask

        names = ["blue", "green", "red", "nir", "swir16", "swir22"][:nb]
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            CSmask(chip.copy(), names, "l2a", intra_op_num_threads=a.threads, inter_op_num_threads=1)
            ts.append(time.perf_counter() - t)
        res["ukis_csmask_api_s"] = statistics.median(ts)
        res["ratio_vs_csmask_api"] = res["ours_s"] / res["ukis_csmask_api_s"]
    res["disk_bytes"] = sum(f.stat().st_size for f in Path(a.model_dir).rglob("*") if f.is_file())
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
