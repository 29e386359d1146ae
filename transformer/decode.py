"""GeoTIFF bytes -> a Raster: pixel array, georeferencing, band descriptions, nodata.

Reads only the requested window, through rasterio's in-memory file, so a cropped request never
decodes the whole file.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from .errors import BadInput, OverBudget


@dataclasses.dataclass
class Raster:
    data: np.ndarray  # (bands, height, width), the file's dtype
    crs: object  # rasterio CRS or None
    transform: object  # affine.Affine of `data` (of the window when cropped)
    descriptions: tuple[str | None, ...]
    nodata: float | None
    tags: dict


def parse_window(window, width: int, height: int) -> Window:
    """[col, row, width, height] -> a Window inside a width x height raster, or BadInput."""
    try:
        col, row, w, h = (int(v) for v in window)
    except (TypeError, ValueError):
        raise BadInput(f"window must be [col, row, width, height] integers, got {window!r}") from None
    if w <= 0 or h <= 0:
        raise BadInput(f"window width and height must be positive, got {w}x{h}")
    if col < 0 or row < 0 or col + w > width or row + h > height:
        raise BadInput(
            f"window [{col}, {row}, {w}, {h}] is outside the raster of {width}x{height} px"
        )
    return Window(col, row, w, h)


def decode(payload: bytes, window=None, max_pixels: int | None = None, pick=None) -> Raster:
    """Decode GeoTIFF bytes; `window` is [col, row, width, height]; refuse more than max_pixels.

    pick(descriptions, count) -> 1-based band indexes to read (default: all). Reading only the
    bands a model needs keeps a 13-band scene's other 7 bands out of memory altogether.
    """
    if not payload:
        raise BadInput("geotiff is empty")
    if payload[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        raise BadInput("geotiff is not a TIFF (bad magic bytes)")
    try:
        with MemoryFile(payload) as mem, mem.open() as src:
            win = parse_window(window, src.width, src.height) if window is not None else None
            w, h = (win.width, win.height) if win is not None else (src.width, src.height)
            if max_pixels is not None and w * h > max_pixels:
                raise OverBudget(
                    f"raster of {w}x{h} px exceeds the request budget of {max_pixels} px; "
                    "send a window or use `cloudmask predict`, which splits large scenes"
                )
            indexes = pick(tuple(src.descriptions), src.count) if pick is not None else None
            data = src.read(indexes=indexes, window=win)
            transform = src.window_transform(win) if win is not None else src.transform
            return Raster(
                data=data,
                crs=src.crs,
                transform=transform,
                descriptions=tuple(src.descriptions),
                nodata=src.nodata,
                tags=src.tags(),
            )
    except BadInput:
        raise
    except (RasterioIOError, rasterio.errors.RasterioError) as e:
        raise BadInput(f"geotiff could not be decoded (truncated or corrupt?): {e}") from None
