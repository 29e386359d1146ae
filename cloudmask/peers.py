"""Peer cloud masks the project is measured against, run on the same reflectance as our models.

ukis-csmask (DLR, Apache-2.0; PyPI ships its four ONNX U-Nets): 4 or 6 bands, an L1C and an L2A
variant of each. Its `CSmask` class returns only an argmax mask, so this module runs the same ONNX
files through onnxruntime with the package's own normalisation (mean/std from the JSON beside each
.onnx), its own 256 px tiling with 20 % overlap and its tukey-window blending (ukis_csmask.utils),
and keeps the class probabilities. Its classes are 0 background, 1 cloud, 2 cloud shadow
(ukis_csmask.mask.CSmask._csm docstring): the same order as ours (clear, cloud, shadow).

DL-L8S2-UV (IPL-UV, MIT; Lopez-Puigdollers et al. 2021), optional: a small Keras U-Net trained on
Landsat-8 Biome TOA reflectance, cloud vs not-cloud only. Its weights live in ../shared/peers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from cloudmask.paths import shared_root, ukis_dir

# ukis-csmask band names -> Sentinel-2 band names (ukis_csmask.mask.CSmask docstring)
UKIS_BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12"}
UKIS_OVERLAP = 0.2  # what CSmask uses
PRODUCT_LEVELS = ("l1c", "l2a")

Peer = Callable[[np.ndarray], np.ndarray]




def ukis_model_name(bands, product_level: str = "l2a") -> str | None:
    """`model_6b_l2a` etc.: 6-band when `bands` include B11 and B12, 4-band when only the 10 m ones; None if neither."""
    level = product_level.lower()
    if level not in PRODUCT_LEVELS:
        raise ValueError(f"product_level must be one of {PRODUCT_LEVELS}, got {product_level!r}")
    have = set(bands)
    if {"B02", "B03", "B04", "B08", "B11", "B12"} <= have:
        return f"model_6b_{level}"
    if {"B02", "B03", "B04", "B08"} <= have:
        return f"model_4b_{level}"
    return None


class UkisPeer:
    """(N, H, W, B) reflectance 0..1, channels in `bands` order -> (N, H, W, 3) probabilities (clear, cloud, shadow)."""

    def __init__(self, bands, model: str, threads: int | None = None, batch: int = 4):
        import onnxruntime as ort

        meta = json.loads((ukis_dir() / f"{model}.json").read_text())
        stats = meta["data"]["dataset_statistics"]
        self.model = model
        self.version = meta["model"]["version"]
        self.name = f"ukis-csmask {model[6:8]} {model[-3:].upper()}"  # e.g. "ukis-csmask 6b L2A"
        self.bands = tuple(bands)
        self.index = [self.bands.index(UKIS_BANDS[b]) for b in stats["band_names"]]
        self.mean = np.asarray(stats["img"][0], np.float32)
        self.std = np.asarray(stats["img"][1], np.float32)
        self.tile = tuple(meta["data"]["target_size"])
        self.batch = batch
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or os.cpu_count() or 1
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(ukis_dir() / f"{model}.onnx"), so,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def _one(self, img: np.ndarray) -> np.ndarray:
        from scipy.special import softmax
        from ukis_csmask.utils import tile_array, untile_array

        h, w = img.shape[:2]
        x = (img[..., self.index].astype(np.float32) - self.mean) / self.std
        tiles = np.moveaxis(tile_array(x, xsize=self.tile[0], ysize=self.tile[1], overlap=UKIS_OVERLAP), -1, 1)
        probs = np.concatenate([
            softmax(self.session.run(None, {self.input_name: np.ascontiguousarray(tiles[i:i + self.batch])})[0], axis=1)
            for i in range(0, len(tiles), self.batch)
        ])
        probs = untile_array(np.moveaxis(probs, 1, -1), (h, w, 3), overlap=UKIS_OVERLAP, smooth_blending=True)
        # the tukey windows of neighbouring tiles sum to ~1, not exactly 1: renormalise
        probs = np.clip(probs, 0.0, None)
        return (probs / np.maximum(probs.sum(axis=-1, keepdims=True), 1e-12)).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[-1] != len(self.bands):
            raise ValueError(f"expected (N, H, W, {len(self.bands)}) reflectance, got {x.shape}")
        return np.stack([self._one(img) for img in x])


def ukis_session(bands, product_level: str = "l2a", threads: int | None = None) -> Peer | None:
    """ukis-csmask as a callable on (N, H, W, B) reflectance in `bands` order, or None if the bands are too few.

    The 6-band model when `bands` include B11 and B12, else the 4-band one; `product_level` picks the
    L1C (top of atmosphere) or L2A (surface reflectance) variant.
    """
    model = ukis_model_name(bands, product_level)
    if model is None:
        return None
    return UkisPeer(bands, model, threads=threads)


# DL-L8S2-UV: Landsat-8 RGBI (B2-B5) and RGBISWIR (B2-B7) models, applied to the Sentinel-2 bands
# closest in wavelength. Inputs TOA reflectance 0..1 (the nets' first 1x1 conv normalises them).
DL_L8S2_UV_FILES = {
    ("B02", "B03", "B04", "B08", "B11", "B12"): "landsatbiomeRGBISWIR7.hdf5",
    ("B02", "B03", "B04", "B08"): "landsatbiomeRGBI6.hdf5",
}


def dl_l8s2_uv_dir() -> Path:
    return shared_root() / "peers" / "dl_l8s2_uv"


class DlL8S2UvPeer:
    """(N, H, W, B) reflectance in `bands` order -> (N, H, W, 3) with shadow probability 0: the net is
    cloud / not cloud only. H and W must be multiples of 4 (two poolings); the chips are."""

    def __init__(self, bands, net_bands, path: Path):
        import keras

        class _SeparableConv2D(keras.layers.SeparableConv2D):
            # the file is tf.keras 2.2.4: its SeparableConv2D config carries kernel_* keys Keras 3 rejects
            def __init__(self, *a, kernel_initializer=None, kernel_regularizer=None, kernel_constraint=None, **kw):
                super().__init__(*a, **kw)

        objs = {"SeparableConv2D": _SeparableConv2D, "_SeparableConv2D": _SeparableConv2D}
        fixed = keras.models.load_model(path, compile=False, custom_objects=objs)
        # saved with a 32x32 input: rebuild the same graph with free height and width, same weights
        cfg = fixed.get_config()
        cfg["layers"][0]["config"]["batch_shape"] = [None, None, None, len(net_bands)]
        self.net = keras.Model.from_config(cfg, custom_objects=objs)
        self.net.set_weights(fixed.get_weights())
        self.bands = tuple(bands)
        self.index = [self.bands.index(b) for b in net_bands]
        self.name = f"DL-L8S2-UV {len(net_bands)}b"
        self.version = path.name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)[..., self.index]
        p = np.asarray(self.net([x], training=False))[..., 0]  # the graph's inputs are a list
        return np.stack([1.0 - p, p, np.zeros_like(p)], axis=-1).astype(np.float32)


def dl_l8s2_uv_session(bands) -> Peer | None:
    """DL-L8S2-UV on the 6 bands (with B11, B12) or the 4 10 m bands; None if the bands or the weights are missing."""
    have = set(bands)
    for net_bands, fname in DL_L8S2_UV_FILES.items():
        if set(net_bands) <= have:
            path = dl_l8s2_uv_dir() / fname
            return DlL8S2UvPeer(bands, net_bands, path) if path.is_file() else None
    return None
