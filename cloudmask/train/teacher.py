"""Teacher pseudo-labels from ukis-csmask on real cloudy scenes, keeping only confident pixels.

ukis-csmask's `CSmask` returns only the argmax mask, so we run its ONNX models directly (same normalisation,
same 256-px tiling with overlap and smooth blending, via ukis_csmask.utils) to get class probabilities.
The package asks for ~30 m input; on the small 10 m scenes here (100x100 and 512x512 px) block-averaging
3x3 first left the teacher too little context (whole clear dates of the DEA stack came out "cloud"), so the
default runs it at native 10 m (`factor=1`); `factor=3` block-averages and upsamples probabilities back.
Pixels whose top probability is below `min_conf` get IGNORE (255),
which the training loss skips. Labels are cached as .npz in the workdir.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from cloudmask.train.labels import IGNORE, confident  # noqa: F401  (IGNORE is read as teacher.IGNORE too)
from cloudmask.paths import ukis_dir as _ukis_dir
from cloudmask.train.sources import Scene
UKIS_BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12"}


def teacher_model(scene: Scene) -> str:
    """Which ukis-csmask model a scene's bands and level allow (6-band when it has B11 and B12)."""
    nb = "6b" if scene.has(("B11", "B12")) else "4b"
    return f"model_{nb}_{scene.level.lower()}"


def _downsample(img: np.ndarray, f: int) -> np.ndarray:
    h, w, b = img.shape
    hh, ww = h // f * f, w // f * f
    return img[:hh, :ww].reshape(hh // f, f, ww // f, f, b).mean(axis=(1, 3))


def teacher_probabilities(scene: Scene, factor: int = 1, threads: int = 2) -> np.ndarray:
    """(H, W, 3) ukis-csmask probabilities (clear, cloud, shadow) for `scene`."""
    import onnxruntime as ort
    from scipy.ndimage import zoom
    from scipy.special import softmax
    from ukis_csmask.utils import tile_array, untile_array

    name = teacher_model(scene)
    meta = json.loads((_ukis_dir() / f"{name}.json").read_text())
    stats = meta["data"]["dataset_statistics"]
    bands = tuple(UKIS_BANDS[b] for b in stats["band_names"])
    img = scene.select(bands).astype(np.float32)
    h, w = img.shape[:2]
    small = _downsample(img, factor) if factor > 1 else img
    x = (small - np.asarray(stats["img"][0], np.float32)) / np.asarray(stats["img"][1], np.float32)
    ts = meta["data"]["target_size"]
    tiles = np.moveaxis(tile_array(x.astype(np.float32), xsize=ts[0], ysize=ts[1], overlap=0.2), -1, 1)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(_ukis_dir() / f"{name}.onnx"), so, providers=["CPUExecutionProvider"])
    iname = sess.get_inputs()[0].name
    probs = np.concatenate([softmax(sess.run(None, {iname: tiles[i : i + 4]})[0], axis=1) for i in range(0, len(tiles), 4)])
    probs = untile_array(np.moveaxis(probs, 1, -1), (small.shape[0], small.shape[1], 3), overlap=0.2, smooth_blending=True)
    if factor > 1:
        probs = zoom(probs, (h / probs.shape[0], w / probs.shape[1], 1), order=1)[:h, :w]
        if probs.shape[:2] != (h, w):
            probs = np.pad(probs, ((0, h - probs.shape[0]), (0, w - probs.shape[1]), (0, 0)), mode="edge")
    probs = np.clip(probs, 0, None)
    return (probs / probs.sum(axis=-1, keepdims=True)).astype(np.float32)


def confident_labels(probs: np.ndarray, min_conf: float) -> np.ndarray:
    return confident(probs, min_conf)


def pseudo_labels(scenes: list[Scene], cache_dir: Path, min_conf: float = 0.9, factor: int = 1) -> list[np.ndarray]:
    """Confident teacher labels for each scene, cached in `cache_dir` keyed by scene content and settings."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for s in scenes:
        key = hashlib.sha1(s.data.tobytes() + f"{teacher_model(s)}|{min_conf}|{factor}".encode()).hexdigest()[:16]
        path = cache_dir / f"{s.name}_{key}.npz"
        if path.exists():
            out.append(np.load(path)["label"])
            continue
        lab = confident_labels(teacher_probabilities(s, factor=factor), min_conf)
        np.savez_compressed(path, label=lab, model=teacher_model(s))
        out.append(lab)
    return out
