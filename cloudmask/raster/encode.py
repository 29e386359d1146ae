"""Mask -> a GeoTIFF (deflate, tiled, nodata 255) with the input's CRS and transform."""

from __future__ import annotations

import numpy as np
from rasterio.io import MemoryFile

from cloudmask import contract


def mask_profile(height: int, width: int, crs, transform) -> dict:
    prof = dict(driver="GTiff", height=height, width=width, count=1, dtype="uint8",
                crs=crs, transform=transform, nodata=contract.NODATA, compress="deflate")
    # GeoTIFF tiles must be multiples of 16; tiny masks stay striped
    if height >= 256 and width >= 256:
        prof.update(tiled=True, blockxsize=256, blockysize=256)
    return prof


def encode(mask: np.ndarray, crs, transform, tags: dict | None = None) -> bytes:
    with MemoryFile() as mem:
        with mem.open(**mask_profile(mask.shape[0], mask.shape[1], crs, transform)) as dst:
            dst.write(mask, 1)
            dst.set_band_description(1, contract.MASK_DESCRIPTION)
            dst.update_tags(**{k: str(v) for k, v in (tags or {}).items()})
            dst.write_colormap(1, {0: (0, 0, 0, 0), 1: (255, 255, 255, 255), 2: (255, 0, 255, 255)})
        return mem.read()
