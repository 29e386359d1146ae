"""The client side of a scene by reference (cloudmask.refscene) against the loopback range server: what counts as a
reference, how URL lists and STAC items resolve to bands and a grid, which bands are read, the level decided once.
(`cloudmask predict` through the real service: tests/e2e/test_reference.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from cloudmask import contract, refscene
from cloudmask.raster import reference, remote

from stacitems import SIX


@pytest.mark.parametrize("text, is_ref", [
    ("scene.tif", False), ("/data/T31UFQ.tif", False), ("https://x.example/B02.tif", True),
    ("s3://sentinel-cogs/a/B02.tif,s3://sentinel-cogs/a/B03.tif", True), ("item.json", True),
    ('{"type": "Feature"}', True),
])
def test_what_is_a_reference(text, is_ref):
    assert refscene.is_reference(text) is is_ref


@pytest.mark.parametrize("names, want", [
    (contract.S2_BANDS, list(SIX)),
    (("B02", "B03", "B04", "B08", "B05"), ["B02", "B03", "B04", "B08"]),
    (("red", "green"), ["red", "green"]),  # nothing fits: all, and the service says why
])
def test_only_the_bands_a_model_uses_are_read(names, want):
    assert refscene.needed_bands(names) == want


def test_a_url_list_names_its_bands_by_file_name(srv):
    urls = [srv.url(f"cogs/{b}.tif") for b in ("B11", "B02", "B03", "B04", "B08", "B12")]
    ref = refscene.open_reference(",".join(urls))
    assert ref.names == ["B11", "B02", "B03", "B04", "B08", "B12"] and ref.item is None
    with rasterio.open(srv.root / "cogs" / "B02.tif") as b02:  # the 10 m grid, not B11's 20 m
        assert (ref.width, ref.height, ref.transform) == (b02.width, b02.height, b02.transform)
    # their headers only: the TIFF magic checked (remote.TIFF_HEAD bytes), then GDAL's first 16 KiB
    assert all(srv.served.get(f"/cogs/{b}.tif", 0) <= 16384 + remote.TIFF_HEAD for b in ("B11", "B12"))


def test_a_stac_item_url_resolves_to_its_assets_and_level(srv):
    ref = refscene.open_reference(srv.url("items/planetary.json"))
    assert ref.names == list(contract.S2_BANDS) and ref.item == srv.url("items/planetary.json")
    assert ref.uris[1] == srv.url("cogs/B02.tif")
    assert refscene.scene_level(ref, None) == "L1C" and refscene.scene_level(ref, "L2A") == "L2A"
    with rasterio.open(srv.root / "cogs" / "B02.tif") as b02:
        assert (ref.width, ref.height) == (b02.width, b02.height)


def test_a_local_item_file(srv, tmp_path):
    item = json.loads((srv.root / "items" / "planetary.json").read_text())
    for a in item["assets"].values():
        a["href"] = srv.url(a["href"].replace("../", ""))
    f = tmp_path / "item.json"
    f.write_text(json.dumps(item))
    ref = refscene.open_reference(str(f))
    assert ref.item == f.read_text() and ref.uris == [srv.url(f"cogs/{b}.tif") for b in contract.S2_BANDS]


def test_one_multiband_url(srv):
    ref = refscene.open_reference(srv.url("cogs/l1c6.tif"))
    assert ref.names is None and ref.descriptions == SIX
    assert refscene.scene_level(ref, None) == "L1C"  # the file's PROCESSING_LEVEL tag


def test_a_block_read_here_is_the_geotiff_the_service_gets(srv):
    ref = refscene.open_reference(",".join(srv.url(f"cogs/{b}.tif") for b in contract.S2_BANDS))
    with refscene.remote.reading(refscene.client_policy(ref.uris)) as r:
        raster = reference.read(r, ref.uris, window=[64, 32, 600, 500], pick=refscene._pick, names=ref.names)
    tif = refscene.block_geotiff(raster, SIX)
    with rasterio.MemoryFile(tif) as mem, mem.open() as src:
        assert src.descriptions == SIX and (src.width, src.height) == (600, 500)
        assert np.array_equal(src.read(), raster.data) and src.transform == raster.transform
    assert {p.rsplit("/", 1)[1] for p in srv.served} >= {f"{b}.tif" for b in SIX}
    assert not {p for p in srv.served if p.endswith(("B01.tif", "B05.tif", "B09.tif", "B10.tif"))}


def test_a_window_outside_the_reference_is_refused(srv, tmp_path):
    ref = refscene.open_reference(srv.url("cogs/l1c6.tif"))
    with pytest.raises(ValueError, match="outside the raster"):
        refscene.run(ref, tmp_path / "m.tif", predict=None, window=(0, 0, ref.width + 1, 10))


def test_a_stac_api_item_url_without_an_extension(srv):
    """STAC APIs name items .../collections/C/items/ID, no .json: a URL whose path has no raster extension is an
    item (as the service's stac.load reads one), and `cloudmask predict URL` resolves its assets."""
    (srv.root / "items" / "S2A_MSIL1C_20160904T155212_R054_T18SVH").write_text(
        (srv.root / "items" / "planetary.json").read_text())
    url = srv.url("items/S2A_MSIL1C_20160904T155212_R054_T18SVH")
    ref = refscene.open_reference(url)
    assert ref.names == list(contract.S2_BANDS) and ref.item == url
    assert ref.uris[1] == srv.url("cogs/B02.tif") and ref.tags["PRODUCT_TYPE"] == "S2MSI1C"
    assert refscene.open_reference(url + "?f=json").item == url + "?f=json"  # a query is no extension either
    single = refscene.open_reference(srv.url("cogs/B02.tif"))  # a raster URL stays a raster
    assert single.item is None and single.uris == [srv.url("cogs/B02.tif")]
