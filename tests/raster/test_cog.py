"""Masks written as Cloud-Optimized GeoTIFFs, checked with cloudmask.raster.cog.problems -- a port of GDAL's
validate_cloud_optimized_geotiff.py checks onto rasterio (neither rio-cogeo nor GDAL's Python utilities are installed
here): tiled, overviews, IFD and tile-data order, the COG ghost header. The validator is shown to reject files
that are not COGs, so a pass means something."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.io import MemoryFile

from cloudmask import contract
from cloudmask.raster import cog

CRS = "EPSG:32618"
TRANSFORM = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 4500000.0)


def blocky_mask(h=1947, w=1933, block=8, seed=0):
    """Classes constant over block x block squares (so every overview level's mode is exact), some nodata."""
    rng = np.random.default_rng(seed)
    small = rng.choice(np.array([0, 0, 1, 2, 255], np.uint8), size=(-(-h // block), -(-w // block)))
    return np.kron(small, np.ones((block, block), np.uint8))[:h, :w]


def test_encoded_mask_is_a_valid_cog_with_mode_overviews():
    mask = blocky_mask(2048, 1792)  # sizes that halve evenly: each overview pixel covers whole source pixels
    data = cog.encode(mask, CRS, TRANSFORM, tags={"cloudmask_model": "m"}, blocksize=256)
    assert cog.problems(data) == []
    with MemoryFile(data) as mem, mem.open() as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.block_shapes == [(256, 256)] and src.nodata == contract.NODATA
        assert src.overviews(1) == [2, 4, 8]
        assert np.array_equal(src.read(1), mask)
        assert (src.crs, src.transform) == (rasterio.crs.CRS.from_string(CRS), TRANSFORM)
        assert src.tags()["cloudmask_model"] == "m" and src.descriptions == (cog.DESCRIPTION,)
        assert src.colormap(1)[1] == (255, 255, 255, 255)
        for level, f in enumerate(src.overviews(1)):
            with MemoryFile(data) as m2, m2.open(overview_level=level) as ov:
                o = ov.read(1)
                assert set(np.unique(o)) <= {0, 1, 2, 255}  # classes, never an average of classes
                assert np.array_equal(o, mask[::f, ::f][:o.shape[0], :o.shape[1]])  # the mode of each block


def test_written_cog_file_and_default_tiles(tmp_path):
    mask = blocky_mask(1100, 1300)
    path = cog.write(tmp_path / "m.tif", mask, CRS, TRANSFORM)
    assert cog.problems(path) == []
    with rasterio.open(path) as src:
        assert src.block_shapes == [(cog.BLOCKSIZE, cog.BLOCKSIZE)] and src.overviews(1)[:2] == [2, 4]
        assert np.array_equal(src.read(1), mask)


def test_a_mask_written_block_by_block_becomes_a_cog(tmp_path):
    mask = blocky_mask(1500, 1200)
    tiled = tmp_path / "blocks.tif"
    with rasterio.open(tiled, "w", driver="GTiff", height=1500, width=1200, count=1, dtype="uint8", crs=CRS,
                       transform=TRANSFORM, nodata=255, tiled=True, blockxsize=256, blockysize=256) as dst:
        for r in range(0, 1500, 512):
            dst.write(mask[r:r + 512], 1, window=((r, min(r + 512, 1500)), (0, 1200)))
    out = cog.from_geotiff(tiled, tmp_path / "mask.tif")
    assert cog.problems(out) == []
    with rasterio.open(out) as src:
        assert np.array_equal(src.read(1), mask) and src.nodata == 255


def test_a_small_mask_is_a_cog_of_one_tile():
    data = cog.encode(blocky_mask(300, 200), CRS, TRANSFORM)
    assert cog.problems(data) == []


@pytest.mark.parametrize("creation, words", [
    (dict(), "not tiled"),
    (dict(tiled=True, blockxsize=256, blockysize=256), "no overviews"),
    (dict(tiled=True, blockxsize=256, blockysize=256, overviews=True), "tile data"),
])
def test_the_validator_rejects_what_is_not_a_cog(creation, words):
    mask = blocky_mask()
    build = creation.pop("overviews", False)
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", height=mask.shape[0], width=mask.shape[1], count=1, dtype="uint8",
                      crs=CRS, transform=TRANSFORM, **creation) as dst:
            dst.write(mask, 1)
            if build:
                dst.build_overviews([2, 4], rasterio.enums.Resampling.mode)
        found = cog.problems(mem.read())
    assert any(words in p for p in found), found
    assert any("ghost header" in p for p in found)
