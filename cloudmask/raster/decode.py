"""GeoTIFF bytes -> a Raster: pixel array, georeferencing, band descriptions, nodata.

Reads only the requested window, through rasterio's in-memory file, so a cropped request never
decodes the whole file.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import rasterio
from rasterio.enums import Interleaving
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from cloudmask import contract

from .errors import BadInput, OverBudget

# What GDAL may decode for one request, per pixel of the pixel budget: 64 bytes (1 GiB at the default
# 4096 x 4096), room for 13 uint16 bands of the whole budget twice over. GDAL decodes whole strips or
# tiles, so a tiny file that declares one 100000 x 100000 strip costs gigabytes for a 512 px window:
# the header says how much before any pixel is read.
DECODE_BYTES_PER_PIXEL = 64

# Pixel types a model input (a GeoTIFF or a `raster` tensor) can come from: the contract's V2 datatypes as numpy
# names; complex or other types are refused rather than cast.
DTYPES = tuple(contract.RASTER_DATATYPES.values())


@dataclasses.dataclass(frozen=True)
class Embedded:
    """A GeoTIFF that lies inside a larger bytes object: buffer[offset:offset + length].

    A V2 BYTES tensor is the file's length (4 bytes) and then the file; slicing the file out would
    copy it (hundreds of MB at the pixel budget), so GDAL reads it where it is, through
    /vsisubfile/ over an in-memory file of the whole buffer (rasterio's MemoryFile keeps bytes as
    they are; it would copy a memoryview)."""

    buffer: bytes
    offset: int
    length: int

    def __post_init__(self):
        if not (isinstance(self.buffer, bytes) and 0 <= self.offset
                and 0 <= self.length <= len(self.buffer) - self.offset):
            raise ValueError(f"no {self.length} bytes at {self.offset} in a buffer of {len(self.buffer)}")

    def __len__(self) -> int:
        return self.length

    def head(self, n: int) -> bytes:
        return self.buffer[self.offset:self.offset + min(n, self.length)]

    def __bytes__(self) -> bytes:  # a copy: for tests and small files, not the request path
        return self.buffer[self.offset:self.offset + self.length]


@contextlib.contextmanager
def _open(payload):
    if isinstance(payload, Embedded):
        with MemoryFile(payload.buffer) as mem, \
                rasterio.open(f"/vsisubfile/{payload.offset}_{payload.length},{mem.name}") as src:
            yield src
    else:
        with MemoryFile(payload) as mem, mem.open() as src:
            yield src


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


def decode_bytes(src, win: Window | None, indexes=None) -> int:
    """Bytes GDAL decodes to read `win` (None: all) of bands `indexes` (None: all) of an open dataset:
    every strip or tile the window touches, whole, times the bands each holds."""
    bh, bw = (max(s) for s in zip(*src.block_shapes))
    itemsize = max(np.dtype(d).itemsize for d in src.dtypes)
    pixel_interleaved = src.count > 1 and src.interleaving == Interleaving.pixel
    # a pixel-interleaved block holds every band, whichever are asked for
    bands = src.count if pixel_interleaved or indexes is None else len(indexes)
    if win is None:
        win = Window(0, 0, src.width, src.height)
    c0, r0 = int(win.col_off), int(win.row_off)
    c1, r1 = c0 + int(win.width) - 1, r0 + int(win.height) - 1
    blocks = (r1 // bh - r0 // bh + 1) * (c1 // bw - c0 // bw + 1)
    return blocks * bh * bw * itemsize * bands


def check_decode_budget(src, win: Window | None, indexes, max_bytes: int) -> None:
    """OverBudget when reading `win` would make GDAL decode more than max_bytes (see decode_bytes)."""
    need = decode_bytes(src, win, indexes)
    if need > max_bytes:
        bh, bw = src.block_shapes[0]
        raise OverBudget(
            f"reading this {'window' if win is not None else 'raster'} needs {need / 2**20:.0f} MiB decoded "
            f"(strips/tiles of {bw}x{bh} px, {src.count} band(s) of {src.dtypes[0]}), over the decode budget "
            f"of {max_bytes / 2**20:.0f} MiB; write the file tiled (e.g. 512 x 512 tiles) or send smaller windows"
        )


def _text(read, what: str):
    """A header field that GDAL hands over as text; bytes that are not UTF-8 are the sender's error."""
    try:
        return read()
    except UnicodeDecodeError:
        raise BadInput(f"geotiff {what} are not valid UTF-8 text") from None


def check_window(window, width: int, height: int, max_pixels: int | None) -> Window | None:
    """`window` ([col, row, width, height] or None) inside a width x height raster, and what it selects within
    max_pixels: the Window (None for the whole raster), else BadInput / OverBudget."""
    win = parse_window(window, width, height) if window is not None else None
    w, h = (win.width, win.height) if win is not None else (width, height)
    if max_pixels is not None and w * h > max_pixels:
        raise OverBudget(f"raster of {w}x{h} px exceeds the request budget of {max_pixels} px; "
                         "send a window or use `cloudmask predict`, which splits large scenes")
    return win


def decode(payload: bytes | Embedded, window=None, max_pixels: int | None = None, pick=None) -> Raster:
    """Decode GeoTIFF bytes (or an Embedded file); `window` is [col, row, width, height]; refuse more than max_pixels,
    and more than max_pixels * DECODE_BYTES_PER_PIXEL bytes of strips/tiles decoded to get them.

    pick(descriptions, count) -> 1-based band indexes to read (default: all). Reading only the
    bands a model needs keeps a 13-band scene's other 7 bands out of memory altogether.
    """
    if not payload:
        raise BadInput("geotiff is empty")
    magic = payload.head(4) if isinstance(payload, Embedded) else payload[:4]
    if magic not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        raise BadInput("geotiff is not a TIFF (bad magic bytes)")
    try:
        with _open(payload) as src:
            win = check_window(window, src.width, src.height, max_pixels)
            bad = sorted({d for d in src.dtypes if d not in DTYPES})
            if bad:
                raise BadInput(f"geotiff pixel type {', '.join(bad)} is not supported; "
                               f"send one of {', '.join(DTYPES)}")
            descriptions = _text(lambda: tuple(src.descriptions), "band descriptions")
            tags = _text(src.tags, "metadata tags")
            indexes = pick(descriptions, src.count) if pick is not None else None
            if max_pixels is not None:
                check_decode_budget(src, win, indexes, max_pixels * DECODE_BYTES_PER_PIXEL)
            data = src.read(indexes=indexes, window=win)
            transform = src.window_transform(win) if win is not None else src.transform
            return Raster(
                data=data,
                crs=src.crs,
                transform=transform,
                descriptions=descriptions,
                nodata=src.nodata,
                tags=tags,
            )
    except BadInput:
        raise
    except (RasterioIOError, rasterio.errors.RasterioError) as e:
        raise BadInput(f"geotiff could not be decoded (truncated or corrupt?): {e}") from None


def from_array(data: np.ndarray, names, crs=None, transform=None, nodata=None, tags=None, window=None,
               max_pixels: int | None = None, pick=None) -> Raster:
    """A raster sent as pixels, (bands, height, width), with its georeferencing: what decode gives for a GeoTIFF of
    the same pixels. `names` describe the bands (one each); crs: anything rasterio's CRS.from_user_input reads
    (WKT, "EPSG:32633"), None for none; transform: the six affine coefficients a, b, c, d, e, f, None for the
    identity; window, max_pixels and pick as decode's. A view of `data` where it can be (no window or band choice
    that needs a copy)."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    if data.ndim != 3 or min(data.shape) <= 0:
        raise BadInput(f"raster must have shape [bands, height, width], got {list(data.shape)}")
    if data.dtype.name not in DTYPES:
        raise BadInput(f"raster pixel type {data.dtype.name} is not supported; send one of {', '.join(DTYPES)}")
    count, height, width = data.shape
    names = tuple(names or ())
    if len(names) != count:
        raise BadInput(f"raster has {count} band(s) but `bands` names {len(names)}: name each band, in order "
                       "(e.g. bands=B02,B03,B04,B08)")
    try:
        crs = CRS.from_user_input(crs) if crs not in (None, "") else None
    except (CRSError, ValueError, TypeError) as e:  # rasterio raises all three, by what the text looks like
        raise BadInput(f"crs is not a coordinate reference system rasterio can read: {e}") from None
    if transform is None:
        transform = Affine.identity()
    else:
        try:
            coeffs = [float(v) for v in transform]
        except (TypeError, ValueError):
            coeffs = []
        if len(coeffs) != 6 or not all(np.isfinite(coeffs)) or coeffs[0] * coeffs[4] - coeffs[1] * coeffs[3] == 0:
            raise BadInput(f"transform must be the six finite affine coefficients a,b,c,d,e,f of an invertible "
                           f"transform, got {transform!r}")
        transform = Affine(*coeffs)
    win = check_window(window, width, height, max_pixels)
    if win is not None:
        r0, c0 = int(win.row_off), int(win.col_off)
        data = data[:, r0:r0 + int(win.height), c0:c0 + int(win.width)]
        transform = rasterio.windows.transform(win, transform)
    indexes = pick(names, count) if pick is not None else None
    if indexes is not None and list(indexes) != list(range(1, count + 1)):
        data = data[[i - 1 for i in indexes]]
    return Raster(data=data, crs=crs, transform=transform, descriptions=names, nodata=nodata,
                  tags=dict(tags or {}))
