"""The transformer's inputs by reference (transformer.uri_input): `uri` / `stac_item` in real kserve InferInput objects
(REST JSON text, REST binary / gRPC raw bytes), and the read mapped to the service's errors (403, 504, 413, 400)
against the loopback range server."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput

from cloudmask import contract
from cloudmask.raster import remote
from transformer import uri_input
from cloudmask.raster.errors import BadInput, OverBudget

from stacitems import SIX


def inp(name, elements, binary=True, datatype="BYTES", shape=None):
    i = InferInput(name=name, shape=shape or [len(elements)], datatype=datatype)
    if binary:
        i.set_data_from_numpy(np.array([e.encode() for e in elements], dtype=np.object_), binary_data=True)
    else:
        i.data = list(elements)
    return i


def pick_six(descriptions, count):
    return [list(descriptions).index(b) + 1 for b in SIX]


def args(**kw):
    p = argparse.ArgumentParser()
    uri_input.add_arguments(p)
    return p.parse_args([f"--{k}={v}" for k, v in kw.items()])


@pytest.mark.parametrize("binary", [True, False])
def test_uri_elements_as_text(binary):
    urls = ["https://x.example/B02.tif", "https://x.example/B03.tif"]
    assert uri_input.reference_input([inp("uri", urls, binary)]) == ("uri", urls)
    item = json.dumps({"type": "Feature"})
    assert uri_input.reference_input([inp("stac_item", [item], binary)]) == ("stac_item", [item])


def test_geotiff_is_not_a_reference():
    assert uri_input.reference_input([inp("geotiff", ["II*"])]) is None


@pytest.mark.parametrize("inputs, words", [
    ([inp("uri", ["https://x/B02.tif"]), inp("geotiff", ["II*"])], "give one of"),
    ([inp("uri", ["https://x/B02.tif"]), inp("stac_item", ["{}"])], "give one of"),
    ([inp("stac_item", ["{}", "{}"])], "shape [1]"),
    ([inp("uri", [f"https://x/{i}.tif" for i in range(33)])], "1 <= n <= 32"),
    ([inp("uri", ["https://x/B02.tif"], binary=False, datatype="FP32")], "must be BYTES"),
])
def test_malformed_reference_inputs_are_400(inputs, words):
    with pytest.raises(BadInput, match=words.replace("[", r"\[").replace("]", r"\]")):
        uri_input.reference_input(inputs)


def test_the_flags_build_the_policy():
    pol = uri_input.policy(args(allowed_uri_prefixes="https://sentinel-cogs.s3.us-west-2.amazonaws.com/,"
                                                     "s3://sentinel-cogs/", uri_max_bytes=1000))
    assert pol.enabled and pol.max_bytes == 1000 and [p.text for p in pol.prefixes][1] == "s3://sentinel-cogs/"
    assert not uri_input.policy(args()).enabled  # off by default


def test_uri_input_off_is_403(srv):
    with pytest.raises(uri_input.URIRefused, match="URI input is disabled") as e:
        uri_input.read(uri_input.policy(args()), "uri", [srv.url("cogs/B02.tif")])
    assert e.value.status_code.name == "PERMISSION_DENIED"


def test_reads_and_maps_each_failure(srv):
    pol = uri_input.policy(args(allowed_uri_prefixes=srv.url("cogs/") + "," + srv.url("items/"),
                                allowed_uri_networks="127.0.0.0/8"))
    raster = uri_input.read(pol, "stac_item", [srv.url("items/planetary.json")], window=[0, 0, 256, 256],
                            max_pixels=4096 ** 2, pick=pick_six)
    assert raster.data.shape == (6, 256, 256) and raster.tags["PRODUCT_TYPE"] == "S2MSI1C"
    urls = [srv.url(f"cogs/{b}.tif") for b in SIX]
    assert uri_input.read(pol, "uri", urls, window=[0, 0, 100, 80]).data.shape == (6, 80, 100)
    with pytest.raises(uri_input.URIRefused, match="secret/B02.tif"):
        uri_input.read(pol, "uri", [srv.url("secret/B02.tif")])
    with pytest.raises(OverBudget, match="request budget"):
        uri_input.read(pol, "uri", urls, max_pixels=1000)
    small = remote.Policy([p.text for p in pol.prefixes], networks=["127.0.0.0/8"], max_bytes=50_000)
    with pytest.raises(OverBudget, match="byte budget"):
        uri_input.read(small, "uri", urls[:1])  # the whole band
    stall = remote.Policy([srv.url("stall/")], networks=["127.0.0.0/8"], timeout_s=1)
    srv.stall_s = 3.0
    with pytest.raises(uri_input.SourceTimeout, match="time budget") as e:
        uri_input.read(stall, "uri", [srv.url("stall/cogs/B02.tif")])
    assert e.value.status_code.name == "DEADLINE_EXCEEDED"
    assert contract.INPUT_URI in uri_input.INPUTS


def test_malformed_urls_and_items_are_400_not_500(srv, item_json):
    """What used to escape as ValueError / AttributeError / TypeError (a 500) is a 400 naming the field."""
    pol = uri_input.policy(args(allowed_uri_prefixes=srv.url("cogs/"), allowed_uri_networks="127.0.0.0/8"))
    with pytest.raises(BadInput, match=r"'http://\[::1/x.tif' is not a valid URL"):
        uri_input.read(pol, "uri", ["http://[::1/x.tif"])
    for field in ("type", "eo:bands"):
        item = item_json("planetary", lambda b: srv.url(f"cogs/{b}.tif"))
        item["assets"]["B02"][field] = 5
        with pytest.raises(BadInput, match=f"asset 'B02' field '{field}'"):
            uri_input.read(pol, "stac_item", [json.dumps(item)], window=[0, 0, 64, 64])
    item = item_json("planetary", lambda b: srv.url(f"cogs/{b}.tif"))
    raster = uri_input.read(pol, "stac_item", [json.dumps(item)], window=[0, 0, 64, 64], pick=pick_six)
    assert raster.data.shape == (6, 64, 64)  # and a good item still reads
