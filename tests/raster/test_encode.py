"""Mask -> GeoTIFF bytes, read back with real rasterio."""

from __future__ import annotations

import io

import numpy as np
import pytest
from affine import Affine
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import Compression
from rasterio.io import MemoryFile

from cloudmask import contract
from cloudmask.raster import encode

TRANSFORM = Affine(10.0, 0.0, 499980.0, 0.0, -10.0, 4600020.0)


def _mask(h, w, seed=0):
    m = np.random.default_rng(seed).choice(np.array([0, 1, 2, 255], np.uint8), size=(h, w))
    return m


@pytest.mark.parametrize("h, w, tiled", [(300, 260, True), (256, 256, True), (512, 1024, True),
                                          (255, 400, False), (400, 255, False), (1, 1, False), (37, 91, False)])
def test_encode_round_trip(h, w, tiled):
    mask = _mask(h, w, seed=h + w)
    tif = encode.encode(mask, CRS.from_epsg(32618), TRANSFORM, tags={"cloud_cover": 0.25, "model": "baseline-6b"})
    assert tif[:4] in (b"II*\x00", b"MM\x00*")
    with MemoryFile(tif) as mem, mem.open() as src:
        assert (src.height, src.width, src.count) == (h, w, 1)
        assert src.crs == CRS.from_epsg(32618)
        assert src.transform == TRANSFORM
        assert src.dtypes == ("uint8",)
        assert src.nodata == contract.NODATA == 255
        assert src.compression == Compression.deflate
        np.testing.assert_array_equal(src.read(1), mask)
        assert src.tags()["cloud_cover"] == "0.25"
        assert src.tags()["model"] == "baseline-6b"
        assert "clear" in src.descriptions[0] and "255" in src.descriptions[0]
        cmap = src.colormap(1)
        assert cmap[1] == (255, 255, 255, 255) and cmap[2] == (255, 0, 255, 255)
        if tiled:
            assert src.block_shapes == [(256, 256)]
    # rasterio's profile calls a one-tile 256x256 file "not tiled"; the TIFF tags say what was written
    tags = Image.open(io.BytesIO(tif)).tag_v2
    assert tags[259] == 8  # Compression: Adobe deflate
    if tiled:
        assert (tags.get(322), tags.get(323)) == (256, 256)  # TileWidth, TileLength
    else:
        assert 322 not in tags and 278 in tags  # striped: RowsPerStrip, no TileWidth


def test_encode_without_crs_keeps_transform():
    mask = _mask(20, 30)
    t = Affine(0.5, 0.0, 10.0, 0.0, -0.5, 20.0)
    with MemoryFile(encode.encode(mask, None, t)) as mem, mem.open() as src:
        assert src.crs is None
        assert src.transform == t
        np.testing.assert_array_equal(src.read(1), mask)


def test_deflate_actually_compresses():
    mask = np.zeros((1024, 1024), np.uint8)
    mask[100:400, 200:900] = 1
    tif = encode.encode(mask, CRS.from_epsg(32618), TRANSFORM)
    assert len(tif) < mask.nbytes // 50  # 1 MiB of two-valued mask deflates to a few KiB


def test_mask_profile():
    p = encode.mask_profile(300, 200, "EPSG:32618", TRANSFORM)
    assert p["dtype"] == "uint8" and p["count"] == 1 and p["nodata"] == 255 and p["compress"] == "deflate"
    assert not p.get("tiled")  # one axis under 256 px: stays striped
    p = encode.mask_profile(300, 256, "EPSG:32618", TRANSFORM)
    assert p["tiled"] is True and p["blockxsize"] == p["blockysize"] == 256
