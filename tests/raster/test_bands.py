"""Band resolution: descriptions, then the `bands` parameter, then defaults by band count."""

from __future__ import annotations

import numpy as np
import pytest

from cloudmask import contract
from cloudmask.raster import bands
from cloudmask.raster.errors import BadInput


@pytest.mark.parametrize("raw, canon", [
    ("B2", "B02"), ("b02", "B02"), ("B02", "B02"), ("B8a", "B8A"), ("band_8A", "B8A"), ("B8A", "B8A"),
    ("Band 11", "B11"), (" B12 ", "B12"), ("B1", "B01"), ("B10", "B10"), ("S2_B04", "B04"), ("B8", "B08"),
])
def test_normalise_spellings(raw, canon):
    assert bands.normalise(raw) == canon


@pytest.mark.parametrize("raw", ["B13", "B00", "B99", "red", "nir", "", "B", "8A", "LST", None, "B8B"])
def test_normalise_rejects_non_s2(raw):
    assert bands.normalise(raw) is None


def test_descriptions_win_over_request_and_default():
    desc = ("B04", "b03", "B2", "band_8A")  # not the 4-band default order
    got = bands.resolve(desc, 4, requested=["B02", "B03", "B04", "B08"])
    assert got == ("B04", "B03", "B02", "B8A")
    assert bands.resolve(desc, 4) == ("B04", "B03", "B02", "B8A")


def test_descriptions_win_even_when_request_is_unknown():
    # a file that says what it holds is believed; the (wrong) request is not consulted
    assert bands.resolve(("B02", "B03", "B04", "B08"), 4, requested="X1,X2,X3,X4") == ("B02", "B03", "B04", "B08")


@pytest.mark.parametrize("desc", [
    ("red", "green", "blue", "nir"),
    ("B02", "B03", None, "B08"),  # one band unnamed: the descriptions are not trusted at all
    (None, None, None, None),
    (),
])
def test_request_used_when_descriptions_do_not_name_bands(desc):
    assert bands.resolve(desc, 4, requested=["B08", "B04", "B03", "B02"]) == ("B08", "B04", "B03", "B02")


def test_request_as_comma_string():
    assert bands.resolve((None,) * 6, 6, requested="B12,b11, B8,B4,B3,B2") == (
        "B12", "B11", "B08", "B04", "B03", "B02")


@pytest.mark.parametrize("count", sorted(contract.DEFAULT_BANDS_BY_COUNT))
def test_defaults_by_count(count):
    got = bands.resolve((None,) * count, count)
    assert got == contract.DEFAULT_BANDS_BY_COUNT[count]
    assert len(got) == count


def test_default_values_are_the_documented_ones():
    # the issue documents these; a change to contract.py must be deliberate
    d = contract.DEFAULT_BANDS_BY_COUNT
    assert d[4] == ("B02", "B03", "B04", "B08")
    assert d[6] == ("B02", "B03", "B04", "B08", "B11", "B12")
    assert d[10] == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    assert d[12] == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    assert d[13] == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


@pytest.mark.parametrize("requested, bad", [(["B02", "B03", "B04", "B99"], "B99"), ("B02,NIR,B04,B08", "NIR")])
def test_unknown_band_name_is_named(requested, bad):
    with pytest.raises(BadInput, match=bad):
        bands.resolve((None,) * 4, 4, requested=requested)


@pytest.mark.parametrize("requested", [["B02", "B03", "B04"], ["B02", "B03", "B04", "B08", "B11"], []])
def test_count_mismatch(requested):
    with pytest.raises(BadInput, match="4"):
        bands.resolve((None,) * 4, 4, requested=requested)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 8, 9, 11, 14])
def test_unsupported_count_without_bands(count):
    with pytest.raises(BadInput, match=f"{count}-band"):
        bands.resolve((None,) * count, count)


def test_duplicate_from_request():
    with pytest.raises(BadInput, match="B02"):
        bands.resolve((None,) * 4, 4, requested=["B02", "b2", "B04", "B08"])


def test_duplicate_from_descriptions():
    with pytest.raises(BadInput, match="B03"):
        bands.resolve(("B02", "B03", "band_3", "B08"), 4)


@pytest.mark.parametrize("family, six, four", [
    ("cloudmask", "cloudmask-6b", "cloudmask-4b"), ("baseline", "baseline-6b", "baseline-4b")])
def test_choose_model(family, six, four):
    assert bands.choose_model(family, contract.S2_BANDS).name == six
    assert bands.choose_model(family, contract.DEFAULT_BANDS_BY_COUNT[12]).name == six
    assert bands.choose_model(family, ("B12", "B11", "B08", "B04", "B03", "B02")).name == six
    assert bands.choose_model(family, ("B02", "B03", "B04", "B08", "B11")).name == four  # no B12
    assert bands.choose_model(family, ("B02", "B03", "B04", "B08", "B12")).name == four  # no B11
    assert bands.choose_model(family, ("B02", "B03", "B04", "B08")).name == four


@pytest.mark.parametrize("names", [("B02", "B03", "B04"), ("B02", "B03", "B04", "B05", "B11", "B12")])
def test_choose_model_too_few_bands(names):
    with pytest.raises(BadInput, match="too few bands"):
        bands.choose_model("cloudmask", names)


def test_select_returns_planes_in_wanted_order():
    names = contract.S2_BANDS
    # plane i is filled with i so the order is visible
    data = np.stack([np.full((3, 5), i, dtype=np.uint16) for i in range(len(names))])
    data[:, 1, 2] += 100 * np.arange(len(names), dtype=np.uint16)  # and a pixel that differs per plane
    out = bands.select(data, names, contract.BANDS_6)
    assert out.shape == (6, 3, 5)
    want_idx = [names.index(b) for b in contract.BANDS_6]
    assert want_idx == [1, 2, 3, 7, 11, 12]
    for k, i in enumerate(want_idx):
        np.testing.assert_array_equal(out[k], data[i])
    reordered = bands.select(data[[3, 2, 1, 7]], ("B04", "B03", "B02", "B08"), contract.BANDS_4)
    np.testing.assert_array_equal(reordered, data[[1, 2, 3, 7]])
