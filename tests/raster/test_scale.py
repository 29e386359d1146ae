"""DN -> reflectance scaling and the nodata mask."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cloudmask import contract
from cloudmask.raster import scale
from cloudmask.raster.errors import BadInput


def test_layout_dtype_and_default_scale():
    data = np.array([[[0, 1000], [5000, 10000]],  # band 0
                     [[100, 200], [300, 400]]], dtype=np.uint16)  # band 1
    out = scale.to_reflectance(data)
    assert out.dtype == np.float32
    assert out.shape == (2, 2, 2)  # (H, W, bands)
    np.testing.assert_allclose(out[..., 0], [[0.0, 0.1], [0.5, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], [[0.01, 0.02], [0.03, 0.04]], rtol=1e-6)


def test_l2a_offset_hand_computed():
    # L2A, processing baseline >= 04.00: reflectance = (DN - 1000) / 10000
    dn = np.array([[[0, 999, 1000, 1001, 1234, 3000, 11000, 12000, 65535]]], dtype=np.uint16)
    out = scale.to_reflectance(dn, scale=contract.DEFAULT_SCALE, offset=contract.L2A_PB04_OFFSET)
    want = [0.0, 0.0, 0.0, 0.0001, 0.0234, 0.2, 1.0, 1.0, 1.0]  # negatives and > 1 clipped
    np.testing.assert_allclose(out[0, :, 0], want, rtol=1e-6, atol=1e-8)


def test_clip_to_custom_value_range():
    dn = np.array([[[0, 2000, 5000, 9000]]], dtype=np.uint16)
    out = scale.to_reflectance(dn, scale=10000, offset=0, value_range=(0.1, 0.6))
    np.testing.assert_allclose(out[0, :, 0], [0.1, 0.2, 0.5, 0.6], rtol=1e-6)


def test_float_input_nan_becomes_zero():
    data = np.array([[[np.nan, 0.25], [2.0, -1.0]]], dtype=np.float32)
    out = scale.to_reflectance(data, scale=1.0, offset=0.0)
    np.testing.assert_array_equal(out[..., 0], [[0.0, 0.25], [1.0, 0.0]])


@settings(max_examples=60, deadline=None)
@given(
    data=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6)),
    sc=st.floats(1.0, 1e5),
    off=st.floats(-5000, 5000),
)
def test_formula_matches_reference(data, sc, off):
    out = scale.to_reflectance(data, scale=sc, offset=off)
    want = np.clip((data.astype(np.float64) + off) / sc, 0.0, 1.0)
    assert out.shape == data.shape[1:] + (data.shape[0],)
    np.testing.assert_allclose(out, np.moveaxis(want, 0, -1), rtol=1e-5, atol=1e-6)


def test_nodata_all_zero_pixels():
    data = np.array([[[0, 0, 5]], [[0, 7, 0]], [[0, 0, 0]]], dtype=np.uint16)
    np.testing.assert_array_equal(scale.nodata_mask(data, None), [[True, False, False]])


def test_nodata_file_value_in_any_band():
    data = np.array([[[1, 65535, 3, 4]], [[1, 2, 65535, 4]]], dtype=np.uint16)
    np.testing.assert_array_equal(scale.nodata_mask(data, 65535.0), [[False, True, True, False]])
    np.testing.assert_array_equal(scale.nodata_mask(data, None), [[False, False, False, False]])


def test_nodata_zero_value_flags_a_pixel_with_any_zero_band():
    # documented rule: any band equal to the file's nodata value (S2 exports declare 0) makes the pixel nodata
    data = np.array([[[0, 5]], [[3, 5]]], dtype=np.uint16)
    np.testing.assert_array_equal(scale.nodata_mask(data, 0), [[True, False]])


def test_nodata_nan():
    data = np.array([[[np.nan, 0.1, 0.2, 0.0]], [[0.3, np.nan, 0.2, 0.0]]], dtype=np.float32)
    # NaN in any band, or all bands zero; a NaN file nodata value must not break the mask
    want = [[True, True, False, True]]
    np.testing.assert_array_equal(scale.nodata_mask(data, None), want)
    np.testing.assert_array_equal(scale.nodata_mask(data, float("nan")), want)
    np.testing.assert_array_equal(scale.nodata_mask(data, np.float64("nan")), want)


@pytest.mark.parametrize("sc, off", [(10000, 0), ("10000", "-1000"), (1, 0.5), (np.float32(3.5), np.int64(-2))])
def test_check_accepts_numbers(sc, off):
    assert scale.check(sc, off) == (float(sc), float(off))


@pytest.mark.parametrize("sc, off, match", [
    (0, 0, "positive"), (-1, 0, "positive"), (-10000.0, 0, "positive"),
    ("abc", 0, "number"), (None, 0, "number"), ([1], 0, "number"), (10000, "x", "number"),
    (math.inf, 0, "positive"), (-math.inf, 0, "positive"), (math.nan, 0, "positive"),
    (10000, math.inf, "finite"), (10000, math.nan, "finite"), ("inf", 0, "positive"),
    (True, 0, "true/false"), (10000, True, "true/false"),  # float(True) would be 1
    (10000, 1e39, "within"), (10000, -1e300, "within"), (10000, 10001, "within"), (1, -1.5, "within"),
])
def test_check_refuses(sc, off, match):
    with pytest.raises(BadInput, match=match):
        scale.check(sc, off)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_nodata_zero_fast_path_equals_the_rule(dtype):
    """nodata 0 is computed in one band-by-band pass; same answer as "all zero or any band == 0"
    (and NaN for floats)."""
    data = np.random.default_rng(0).integers(0, 4, (6, 40, 30)).astype(dtype)
    if dtype == np.float32:
        data[2, 5, 5] = np.nan
    want = np.all(data == 0, axis=0) | np.any(data == 0, axis=0)
    if dtype == np.float32:
        want |= np.any(np.isnan(data), axis=0)
    np.testing.assert_array_equal(scale.nodata_mask(data, 0), want)
    np.testing.assert_array_equal(scale.nodata_mask(data, 0.0), want)


def test_offset_up_to_one_reflectance_unit_is_accepted():
    assert scale.check(10000, -10000) == (10000.0, -10000.0)
    assert scale.check(10000, -1000) == (10000.0, -1000.0)


def test_infinite_pixels_are_nodata_and_reflectance_zero():
    data = np.array([[[0.1, np.inf, -np.inf, 0.3]], [[0.2, 0.2, 0.2, np.nan]]], np.float32)
    np.testing.assert_array_equal(scale.nodata_mask(data, None), [[False, True, True, True]])
    np.testing.assert_array_equal(scale.nodata_mask(data, 0), [[False, True, True, True]])
    out = scale.to_reflectance(data, 1.0, 0.0)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("values, given, want", [
    ([0.0, 0.3, 1.2], None, (1.0, 0.0)),  # reflectance floats: scale 1, the file's DN offset not applied
    ([0.0, 300.0, 1200.0], None, (10000.0, -1000.0)),  # DN stored as floats
    ([0.0, 0.3, 1.2], 10000, (10000.0, -1000.0)),  # an explicit scale wins
])
def test_resolve_float_reflectance(values, given, want):
    data = np.array(values, np.float32).reshape(1, 1, 3)
    invalid = scale.nodata_mask(data, 0)
    assert scale.resolve(data, invalid, given, None, -1000.0) == want


def test_resolve_integers_keep_the_default_scale_and_file_offset():
    data = np.ones((1, 2, 2), np.uint16)
    assert scale.resolve(data, np.zeros((2, 2), bool), None, None, -1000.0) == (contract.DEFAULT_SCALE, -1000.0)
    assert scale.resolve(data, np.zeros((2, 2), bool), None, 0.0, -1000.0) == (contract.DEFAULT_SCALE, 0.0)


def test_reflectance_ignores_nodata_pixels():
    data = np.array([[[0.2, 9999.0]]], np.float32)  # a huge value under nodata does not make it DN
    assert scale.is_reflectance(data, np.array([[False, True]]))
    assert not scale.is_reflectance(data, np.array([[False, False]]))
