"""Processing level (cloudmask.raster.level): parameter > tags > bands > radiometry > unknown."""

import numpy as np
import pytest

from cloudmask import contract
from cloudmask.raster import level
from cloudmask.raster.errors import BadInput


@pytest.mark.parametrize("text,want", [("L1C", "L1C"), ("l2a", "L2A"), ("Level-2A", "L2A"), ("LEVEL_1C", "L1C"),
                                       ("S2MSI1C", "L1C"), ("S2MSI2A", "L2A"), ("TOA", "L1C"), ("BOA", "L2A"),
                                       ("unknown", contract.UNKNOWN_LEVEL), ("auto", None), ("", None), (None, None)])
def test_parse(text, want):
    assert level.parse(text) == want


@pytest.mark.parametrize("bad", ["L3", "level-9", "banana", "21C", "XX2A", "SR"])
def test_parse_refuses(bad):
    with pytest.raises(BadInput, match="level must be"):
        level.parse(bad)


def test_tags():
    assert level.from_tags({"PROCESSING_LEVEL": "Level-1C"}) == "L1C"
    assert level.from_tags({"product_type": "S2MSI2A"}) == "L2A"
    assert level.from_tags({"BOA_ADD_OFFSET": "-1000"}) == "L2A"
    assert level.from_tags({"PRODUCT_TYPE": "S2MSI", "BOA_QUANTIFICATION_VALUE": "10000"}) == "L2A"
    assert level.from_tags({"AREA_OR_POINT": "Area"}) is None
    assert level.from_tags({"LEVEL": "2A"}) is None  # a generic tag says nothing of Sentinel-2 processing
    assert level.from_tags({"PRODUCT_TYPE": "SR"}) is None


def test_bands_b10_means_l1c():
    assert level.from_bands(contract.S2_BANDS) == "L1C"
    assert level.from_bands(contract.DEFAULT_BANDS_BY_COUNT[12]) is None


def test_radiometry_says_l2a_only_when_blue_is_darker_than_any_atmosphere():
    rng = np.random.default_rng(0)
    surface = rng.uniform(0.005, 0.1, (64, 64)).astype(np.float32)
    assert level.from_radiometry(surface) == "L2A"
    toa = surface + 0.06  # the same ground under Rayleigh path radiance
    assert level.from_radiometry(toa) is None
    assert level.from_radiometry(surface[:5, :5]) is None  # too few pixels
    invalid = np.ones((64, 64), bool)
    assert level.from_radiometry(surface, invalid) is None


def test_resolve_precedence():
    dark = np.full((32, 32), 0.01, np.float32)
    tags = {"PROCESSING_LEVEL": "Level-1C"}
    assert level.resolve("L2A", tags, contract.S2_BANDS, dark) == ("L2A", "parameter")
    assert level.resolve(None, tags, (), dark) == ("L1C", "tags")
    assert level.resolve(None, {}, contract.S2_BANDS, dark) == ("L1C", "bands")
    assert level.resolve(None, {}, contract.BANDS_6, dark) == ("L2A", "radiometry")
    assert level.resolve(None, {}, contract.BANDS_6, dark + 0.1) == (contract.UNKNOWN_LEVEL, "none")
    assert level.resolve("unknown", tags, (), dark) == (contract.UNKNOWN_LEVEL, "parameter")
