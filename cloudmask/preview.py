"""A PNG a person can look at: the scene in true colour with cloud and shadow overlaid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from cloudmask import contract

CLOUD_RGB = (255, 210, 0)  # yellow: visible on white clouds and dark water alike
SHADOW_RGB = (200, 0, 255)


def true_colour(rgb_reflectance: np.ndarray) -> np.ndarray:
    """(3, H, W) reflectance -> (H, W, 3) uint8, each band stretched 2-98 % (what a viewer would do;
    per band, so the blue haze of top-of-atmosphere data does not tint the picture)."""
    x = np.moveaxis(rgb_reflectance, 0, -1).astype(np.float32)
    out = np.zeros(x.shape, dtype=np.uint8)
    for i in range(3):
        band = x[..., i]
        valid = np.isfinite(band) & (band > 0)
        lo, hi = np.percentile(band[valid], (2, 98)) if valid.any() else (0.0, 0.3)
        out[..., i] = (np.clip((band - lo) / max(hi - lo, 1e-6), 0, 1) ** (1 / 1.2) * 255).astype(np.uint8)
    return out


def overlay(rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    out = rgb.astype(np.float32)
    for cls, colour in ((contract.CLOUD, CLOUD_RGB), (contract.SHADOW, SHADOW_RGB)):
        m = mask == cls
        out[m] = (1 - alpha) * out[m] + alpha * np.array(colour, np.float32)
    out[mask == contract.NODATA] = 0
    return out.astype(np.uint8)


def write(scene: Path | str, mask_path: Path | str, out_png: Path | str, max_side: int = 1024,
          window=None, bands=None) -> Path:
    """Overlay the mask on the scene's B04/B03/B02, shrunk so the long side is <= max_side."""
    from PIL import Image

    from cloudmask.raster.bands import resolve

    with rasterio.open(mask_path) as m:
        h, w = m.height, m.width
        f = max(1.0, max(h, w) / max_side)
        shape = (max(1, int(h / f)), max(1, int(w / f)))
        mask = m.read(1, out_shape=shape, resampling=Resampling.nearest)
    with rasterio.open(scene) as src:
        names = resolve(src.descriptions, src.count, bands)
        idx = [names.index(b) + 1 for b in ("B04", "B03", "B02")]
        win = rasterio.windows.Window(*window) if window is not None else None
        rgb = src.read(idx, window=win, out_shape=(3,) + shape, resampling=Resampling.average) / 10000.0
    img = overlay(true_colour(rgb), mask)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(out_png)
    return out_png
