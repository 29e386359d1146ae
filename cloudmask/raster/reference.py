"""Read a window of a raster given by reference -- one multi-band URL, or one URL per band -- into the Raster that
decoding GeoTIFF bytes gives (transformer.decode): data (bands, h, w) in the files' dtype holding only the picked
bands in pick order, CRS and the window's transform, band descriptions, nodata, tags.

Only the window's tiles are fetched (GDAL range reads through remote.Reader, within the request's byte and time
budget), and with one URL per band only the bands that `pick` chooses are opened at all. Bands on a coarser grid
(Sentinel-2's 20 m and 60 m bands) are resampled bilinearly onto the finest grid among the chosen bands -- the 10 m
grid for any model band set -- by georeferencing (a WarpedVRT of exactly the window), as cloudmask.samples builds
its stacks; the window is given in that grid's pixels.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath

import numpy as np
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds

from cloudmask.raster import bands as band_ops
from cloudmask.raster import decode as decode_ops
from cloudmask.raster.errors import BadInput, OverBudget

from . import remote

RESAMPLING = Resampling.bilinear


def band_from_name(url: str) -> str | None:
    """The Sentinel-2 band a file's name says it holds: .../B02.tif, ..._B8A_20m.tif, T31UFQ_..._B11.tif -> B02, B8A,
    B11; None when no part of the name (split on _ - .) is a band name."""
    stem = PurePosixPath(url.split("?", 1)[0]).name
    found = {band_ops.normalise(tok) for tok in re.split(r"[_\-.]", stem)} - {None}
    return found.pop() if len(found) == 1 else None


def _check_dtypes(src, url: str) -> None:
    bad = sorted({d for d in src.dtypes if d not in decode_ops.DTYPES})
    if bad:
        raise BadInput(f"{url!r}: pixel type {', '.join(bad)} is not supported; send one of "
                       f"{', '.join(decode_ops.DTYPES)}")


def read(reader: remote.Reader, uris, window=None, max_pixels: int | None = None, pick=None, names=None,
         tags: dict | None = None) -> decode_ops.Raster:
    """The window of `uris` (one URL: a multi-band raster; several: one single-band raster per band).

    names: the band of each URL (one per band; e.g. from a STAC item); None: each file's band description, else
    its name (band_from_name). tags: metadata that holds for the scene (processing level, offset) over the files'.
    pick(descriptions, count) -> 1-based indexes of the bands to read, as for transformer.decode.decode.
    Refuses more than max_pixels and more than max_pixels * DECODE_BYTES_PER_PIXEL decoded, like decode."""
    if isinstance(uris, str):
        uris = [uris]
    uris = list(uris)
    if not uris:
        raise BadInput("uri holds no URL")
    budget = max_pixels * decode_ops.DECODE_BYTES_PER_PIXEL if max_pixels is not None else None
    if len(uris) == 1 and names is None:
        return _read_one(reader, uris[0], window, max_pixels, budget, pick, tags)
    if names is not None and len(names) != len(uris):
        raise BadInput(f"{len(uris)} URLs but {len(names)} band names")
    opened = {}

    def src_of(i):
        if i not in opened:
            opened[i] = reader.open(uris[i], "uri" if len(uris) == 1 else f"uri[{i}]")
            if opened[i].count != 1:
                raise BadInput(f"{uris[i]!r} holds {opened[i].count} bands; with one URL per band each file "
                               "holds one band (or send one multi-band URL)")
            _check_dtypes(opened[i], uris[i])
        return opened[i]

    if names is None:
        names = [band_from_name(u) for u in uris]
        for i, n in enumerate(names):
            if n is None:  # the name says nothing: the file's own description may
                names[i] = decode_ops._text(lambda: src_of(i).descriptions[0], "band descriptions")
    descriptions = tuple(names)
    indexes = pick(descriptions, len(uris)) if pick is not None else list(range(1, len(uris) + 1))
    srcs = [src_of(i - 1) for i in indexes]
    ref = min(srcs, key=lambda s: abs(s.res[0]))  # the finest grid; the first of equals
    win = decode_ops.check_window(window, ref.width, ref.height, max_pixels)
    if win is None:
        win = Window(0, 0, ref.width, ref.height)
    transform = ref.window_transform(win)
    h, w = int(win.height), int(win.width)
    dtype = np.result_type(*[s.dtypes[0] for s in srcs])
    data = np.empty((len(srcs), h, w), dtype=dtype)
    need = 0
    for k, src in enumerate(srcs):
        same_grid = (src.crs == ref.crs and src.transform == ref.transform and src.shape == ref.shape)
        if same_grid:
            src_win = win
        else:  # the source pixels under the window, rounded out to whole pixels and clipped to the file
            bounds = (transform.c, transform.f + h * transform.e, transform.c + w * transform.a, transform.f)
            if src.crs != ref.crs:
                from rasterio.warp import transform_bounds

                bounds = transform_bounds(ref.crs, src.crs, *bounds, densify_pts=21)
            sw = from_bounds(*bounds, transform=src.transform)
            c0, r0 = max(0, math.floor(sw.col_off) - 1), max(0, math.floor(sw.row_off) - 1)  # bilinear: +1 px
            c1 = min(src.width, math.ceil(sw.col_off + sw.width) + 1)
            r1 = min(src.height, math.ceil(sw.row_off + sw.height) + 1)
            src_win = Window(c0, r0, max(1, c1 - c0), max(1, r1 - r0))
        need += decode_ops.decode_bytes(src, src_win, [1])
        if budget is not None and need > budget:
            raise OverBudget(f"reading this window needs {need / 2**20:.0f} MiB decoded from {len(srcs)} "
                             f"file(s) (tiles of {src.block_shapes[0][1]}x{src.block_shapes[0][0]} px), over the "
                             f"decode budget of {budget / 2**20:.0f} MiB; send smaller windows")
        if same_grid:
            data[k] = src.read(1, window=win)
        else:
            with WarpedVRT(src, crs=ref.crs, transform=transform, width=w, height=h, resampling=RESAMPLING,
                           nodata=src.nodata) as vrt:
                data[k] = vrt.read(1)
    file_tags = decode_ops._text(ref.tags, "metadata tags")
    return decode_ops.Raster(data=data, crs=ref.crs, transform=transform, descriptions=descriptions,
                             nodata=ref.nodata, tags={**file_tags, **(tags or {})})


def _read_one(reader, uri, window, max_pixels, budget, pick, tags) -> decode_ops.Raster:
    src = reader.open(uri)
    win = decode_ops.check_window(window, src.width, src.height, max_pixels)
    _check_dtypes(src, uri)
    descriptions = decode_ops._text(lambda: tuple(src.descriptions), "band descriptions")
    file_tags = decode_ops._text(src.tags, "metadata tags")
    indexes = pick(descriptions, src.count) if pick is not None else None
    if budget is not None:
        decode_ops.check_decode_budget(src, win, indexes, budget)
    data = src.read(indexes=indexes, window=win)
    transform = src.window_transform(win) if win is not None else src.transform
    return decode_ops.Raster(data=data, crs=src.crs, transform=transform, descriptions=descriptions,
                             nodata=src.nodata, tags={**file_tags, **(tags or {})})


def read_uris(uris, policy: remote.Policy, **kw) -> decode_ops.Raster:
    """read() within one request's budgets under `policy`."""
    with remote.reading(policy) as r:
        return read(r, uris, **kw)
