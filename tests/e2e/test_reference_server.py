"""The service reads references itself (inputs `uri` / `stac_item`): real `python -m transformer` and predictor
processes on loopback, started with --allowed_uri_prefixes for a loopback range server serving Sentinel-2 COGs and
STAC items. Every refused case gets its 4xx naming the URL (REST) or its gRPC code, and a good request still answers
after each; `cloudmask predict --server-side-read` gives the mask a client-side read gives; `mask_geotiff` is a COG."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import grpc
import httpx
import numpy as np
import pytest
import rasterio
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from cloudmask.raster import cog
from cloudmask.supervisor import Stack

from rangeserver import RangeServer
from stacitems import SIX, build_tree, planetary_item

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "cloudmask.cli", "predict"]
WINDOW = "200,100,1400,1300"
URI_MAX_BYTES = 10_000_000  # a 640 px block of six bands fetches ~5 MB; the whole scene ~30 MB


@pytest.fixture(scope="module")
def cogs(tmp_path_factory):
    root = build_tree(tmp_path_factory.mktemp("served"))
    with RangeServer(root) as srv:
        yield srv


@pytest.fixture(scope="module")
def uri_stack(cogs, tmp_path_factory):
    """The service with URI input allowed for the range server's cogs/, items/ and redirect/ (and a private
    address's prefix, to be refused by address), loopback allowed as a network."""
    prefixes = ",".join([cogs.url("cogs/"), cogs.url("items/"), cogs.url("redirect/"), "http://10.255.255.1:9/"])
    s = Stack(http_port=0, grpc_port=0, model_family="baseline", log_dir=tmp_path_factory.mktemp("logs"),
              extra_transformer_args=[f"--allowed_uri_prefixes={prefixes}", "--allowed_uri_networks=127.0.0.0/8",
                                      f"--uri_max_bytes={URI_MAX_BYTES}", "--uri_timeout_seconds=20"])
    with s:
        yield s


def rest(stack, name, elements, window="0,0,256,256", outputs=None):
    body = {"inputs": [{"name": name, "datatype": "BYTES", "shape": [len(elements)], "data": elements}],
            "parameters": {"window": window} if window else {}}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    return httpx.post(f"{stack.url}/v2/models/cloudmask/infer", json=body, timeout=120)


def urls(cogs, bands=SIX):
    return [cogs.url(f"cogs/{b}.tif") for b in bands]


def test_uri_input_is_off_by_default(stack, cogs):
    r = rest(stack, "uri", urls(cogs))
    assert r.status_code == 403 and "URI input is disabled" in r.json()["error"]
    assert cogs.url("cogs/B02.tif") in r.json()["error"]


def test_good_reads_by_uri_and_stac_item(uri_stack, cogs):
    by_uri = rest(uri_stack, "uri", urls(cogs), outputs=["mask", "mask_geotiff"])
    assert by_uri.status_code == 200, by_uri.text
    outs = {o["name"]: o for o in by_uri.json()["outputs"]}
    assert outs["mask"]["shape"] == [256, 256]
    tif = base64.b64decode(outs["mask_geotiff"]["data"][0])
    assert cog.problems(tif) == []
    with rasterio.MemoryFile(tif) as mem, mem.open() as m:
        assert np.array_equal(m.read(1).reshape(-1), np.asarray(outs["mask"]["data"], np.uint8))
    by_item = rest(uri_stack, "stac_item", [cogs.url("items/planetary.json")])
    assert by_item.status_code == 200, by_item.text
    assert by_item.json()["parameters"]["level"] == "L1C"  # from the item
    assert by_item.json()["parameters"]["input_bands"].split(",")[:3] == ["B01", "B02", "B03"]


@pytest.mark.parametrize("elements, status, words", [
    (["file:///etc/passwd"], 403, "scheme file://"),
    (["/vsicurl/http://127.0.0.1/x.tif"], 403, "/vsi paths"),
    (["http://127.0.0.1:1/cogs/B02.tif"], 403, "not under an allowed URI prefix"),
    (["http://10.255.255.1:9/cogs/B02.tif"], 403, "private address 10.255.255.1"),
    (["REDIRECT_OUT"], 403, "outside the allowed URI prefixes"),
    (["OVERSIZE"], 413, "byte budget"),
    (["not a url"], 400, "spaces"),
    (["http://[::1/x.tif"], 400, "is not a valid URL"),
    (["http://127.0.0.1:0/cogs/B02.tif"], 400, "bad port"),
    (["VRT_AS_TIF"], 400, "is not a TIFF"),
    (["STAC_TYPE_5"], 400, "asset 'B02' field 'type' must be text"),
    (["STAC_EO_BANDS_5"], 400, "asset 'B02' field 'eo:bands' must be a list"),
])
def test_refused_by_the_service_which_keeps_serving(uri_stack, cogs, elements, status, words):
    window, name = "0,0,256,256", "uri"
    if elements == ["REDIRECT_OUT"]:
        cogs.redirects["out.tif"] = cogs.url("secret/B02.tif")
        elements = [cogs.url("redirect/out.tif")]
    if elements == ["OVERSIZE"]:
        elements, window = urls(cogs), None  # the whole scene: all six files' tiles
    if elements == ["VRT_AS_TIF"]:  # a VRT named .tif on an allowed host, pointing at a file on the service's disk
        (cogs.root / "cogs" / "vrt.tif").write_text(
            f'<VRTDataset rasterXSize="256" rasterYSize="256"><VRTRasterBand dataType="UInt16" band="1">'
            f'<SimpleSource><SourceFilename relativeToVRT="0">{cogs.root / "secret" / "B02.tif"}</SourceFilename>'
            f'<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>')
        elements = [cogs.url("cogs/vrt.tif")]
    if elements[0].startswith("STAC_"):  # the item's JSON itself, one asset's field of the wrong type
        item = planetary_item(lambda b: cogs.url(f"cogs/{b}.tif"))
        item["assets"]["B02"]["type" if elements[0] == "STAC_TYPE_5" else "eo:bands"] = 5
        name, elements = "stac_item", [json.dumps(item)]
    cogs.requests.clear()
    r = rest(uri_stack, name, elements, window=window)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert not [p for _, p, _ in cogs.requests if p.startswith("/secret/")]
    assert rest(uri_stack, "uri", urls(cogs)).status_code == 200  # and the next good request is answered


def test_grpc_codes(uri_stack, cogs):
    with grpc.insecure_channel(uri_stack.grpc) as channel:
        stub = GRPCInferenceServiceStub(channel)

        def call(url):
            req = pb.ModelInferRequest(model_name="cloudmask", inputs=[pb.ModelInferRequest.InferInputTensor(
                name="uri", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[url.encode()]))])
            req.parameters["window"].string_param = "0,0,256,256"
            return stub.ModelInfer(req, timeout=120)

        with pytest.raises(grpc.RpcError) as e:
            call(cogs.url("secret/B02.tif"))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "secret/B02.tif" in e.value.details()
        assert call(cogs.url("cogs/l1c6.tif")).outputs


def test_predict_server_side_read_equals_reading_here(uri_stack, cogs, tmp_path):
    from rasterio.windows import Window

    from cloudmask import blocks

    here, there = tmp_path / "here.tif", tmp_path / "there.tif"
    # read here, the blocks go as `raster` tensors: exactly their pixels (6 uint16 bands), no GeoTIFF around them
    col, row, w, h = (int(v) for v in WINDOW.split(","))
    # the file itself: opened over HTTP from this process (whose threads run the range server), it hung
    with rasterio.open(cogs.root / "cogs" / "B02.tif") as f:
        full = f.shape
    reads = blocks.blocks(Window(col, row, w, h), 512, blocks.MARGIN, full[1], full[0])
    raw = sum(int(b.read.width) * int(b.read.height) for b in reads) * 6 * 2
    for out, extra in ((here, []), (there, ["--server-side-read"])):
        for ref in (",".join(urls(cogs)), cogs.url("items/planetary.json")):
            r = subprocess.run(CLI + [ref, "--out", str(out), "--url", uri_stack.url, "--window", WINDOW,
                                      "--block", "512", "--level", "L1C", "--json", *extra],
                               capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stderr
            assert cog.problems(out) == []
            summary = json.loads(r.stdout.strip().splitlines()[-1])
            assert summary["requests"] == len(reads)
            assert summary["bytes_sent"] == (0 if extra else raw), summary
    with rasterio.open(here) as a, rasterio.open(there) as b:
        assert np.array_equal(a.read(1), b.read(1)) and a.transform == b.transform


def test_predict_server_side_read_refused_is_exit_4(stack, cogs, tmp_path):
    r = subprocess.run(CLI + [",".join(urls(cogs)), "--out", str(tmp_path / "m.tif"), "--url", stack.url,
                              "--server-side-read", "--window", "0,0,300,300"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 4 and "(403)" in r.stderr and "URI input is disabled" in r.stderr
