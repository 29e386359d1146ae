"""Masks as Cloud-Optimized GeoTIFFs: GDAL's COG driver (internal tiles, overviews by MODE resampling so they hold
classes, not averages of classes; deflate; nodata 255), and a check of a file's layout after GDAL's own COG
validation (validate_cloud_optimized_geotiff.py: tiled, overviews, IFDs and tile data in COG order, ghost header).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.io import MemoryFile

from cloudmask import contract

BLOCKSIZE = 512
DESCRIPTION = contract.MASK_DESCRIPTION
COLORMAP = {0: (0, 0, 0, 0), 1: (255, 255, 255, 255), 2: (255, 0, 255, 255)}


def profile(height: int, width: int, crs, transform, blocksize: int = BLOCKSIZE) -> dict:
    return dict(driver="COG", height=height, width=width, count=1, dtype="uint8", crs=crs, transform=transform,
                nodata=contract.NODATA, compress="DEFLATE", blocksize=blocksize, overview_resampling="MODE",
                overviews="AUTO", bigtiff="IF_SAFER")


def _fill(dst, mask, tags) -> None:
    dst.write(mask, 1)
    dst.set_band_description(1, DESCRIPTION)
    dst.update_tags(**{k: str(v) for k, v in (tags or {}).items()})
    dst.write_colormap(1, COLORMAP)


def encode(mask: np.ndarray, crs, transform, tags: dict | None = None, blocksize: int = BLOCKSIZE) -> bytes:
    """(H, W) uint8 mask -> the bytes of a COG (the service's `mask_geotiff`)."""
    with MemoryFile() as mem:
        with mem.open(**profile(mask.shape[0], mask.shape[1], crs, transform, blocksize)) as dst:
            _fill(dst, mask, tags)
        return mem.read()


def write(path, mask: np.ndarray, crs, transform, tags: dict | None = None, blocksize: int = BLOCKSIZE) -> Path:
    """(H, W) uint8 mask -> a COG file at `path`."""
    path = Path(path)
    with rasterio.open(path, "w", **profile(mask.shape[0], mask.shape[1], crs, transform, blocksize)) as dst:
        _fill(dst, mask, tags)
    return path


def from_geotiff(src_path, dst_path, blocksize: int = BLOCKSIZE) -> Path:
    """A tiled GeoTIFF written block by block (a client's mask of a whole scene) -> a COG at dst_path; GDAL
    copies tile by tile, so the mask is never whole in memory."""
    from rasterio.shutil import copy

    # NUM_THREADS: tiles compressed on every core (the service is idle by then: this is the scene's serial tail)
    copy(str(src_path), str(dst_path), driver="COG", compress="DEFLATE", blocksize=blocksize,
         overview_resampling="MODE", overviews="AUTO", bigtiff="IF_SAFER", num_threads="ALL_CPUS")
    return Path(dst_path)


def problems(path_or_bytes) -> list[str]:
    """Why a file is not a valid COG, as GDAL's validate_cloud_optimized_geotiff.py judges it (empty: valid):
    a GeoTIFF; tiled, every overview too; overviews when larger than 512 px; the main IFD first, then the overviews'
    in order; tile data after the IFDs, the smallest overview's first, the full resolution's last; and the ghost
    header GDAL writes for COGs (LAYOUT=COG)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        with MemoryFile(bytes(path_or_bytes)) as mem, mem.open() as src:
            return _problems(src)
    with rasterio.open(path_or_bytes) as src:
        return _problems(src)


def _problems(src) -> list[str]:
    out = []
    if src.driver != "GTiff":
        return [f"driver is {src.driver}, not GTiff"]
    bh, bw = src.block_shapes[0]
    tiled = bw < src.width or (bw == src.width and bh == bw and bw % 16 == 0)
    if not tiled and (src.width > 512 or src.height > 512):
        out.append(f"main image of {src.width}x{src.height} is not tiled (blocks {bw}x{bh})")
    factors = src.overviews(1)
    if not factors and (src.width > 512 or src.height > 512):
        out.append("larger than 512 px but has no overviews")
    if src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG":
        out.append("no COG ghost header (IMAGE_STRUCTURE LAYOUT=COG)")

    def tag(name, ovr=None):
        v = src.get_tag_item(name, "TIFF", bidx=1, ovr=ovr)
        return int(v) if v not in (None, "") else None

    ifd = [tag("IFD_OFFSET")] + [tag("IFD_OFFSET", i) for i in range(len(factors))]
    if any(v is None for v in ifd):
        out.append("GDAL reports no IFD offsets")
        return out
    if ifd != sorted(ifd):
        out.append(f"IFDs are not in COG order (main first, then overviews): {ifd}")
    data = [tag("BLOCK_OFFSET_0_0")] + [tag("BLOCK_OFFSET_0_0", i) for i in range(len(factors))]
    data = [d for d in data if d]  # an all-nodata tile may be left out (offset 0)
    if data and min(data) < max(ifd):
        out.append("tile data before the last IFD")
    if data != sorted(data, reverse=True):
        out.append(f"tile data not in COG order (smallest overview first, full resolution last): {data}")
    for i, f in enumerate(factors):
        with rasterio.open(src.name, overview_level=i) as ov:
            obh, obw = ov.block_shapes[0]
            if obw >= ov.width and obh != obw and (ov.width > 512 or ov.height > 512):
                out.append(f"overview {i} (1/{f}) is not tiled")
    return out
