"""The `raster` input: a raster's pixels as a V2 tensor [bands, height, width] with its georeferencing as request
parameters, instead of a GeoTIFF (what `cloudmask predict` sends for each block of a large scene). Real servers on
loopback, real clients: the answer must be the one the same pixels get as a GeoTIFF, over REST binary, REST JSON and
gRPC, and a malformed one gets a 4xx naming the problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile

from cloudmask.client import Client

from test_service import rest_infer

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent


def grpc_raster(stack, out: Path, *args) -> dict:
    """raster_call.py in its own process (the V2 protos of tritonclient and kserve clash in one)."""
    r = subprocess.run([sys.executable, str(HERE / "raster_call.py"), stack.grpc, *map(str, args), str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _read(path):
    with rasterio.open(path) as src:
        return src.read(), list(src.descriptions), src.crs, src.transform, src.nodata, src.tags()


@pytest.mark.parametrize("key", ["l1c6", "l2a12"])
@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_raster_input_answers_as_the_geotiff_does(stack, scenes, key, protocol, tmp_path):
    data, names, crs, transform, nodata, tags = _read(scenes[key])
    ref = rest_infer(stack, scenes[key], outputs=("mask", "cloud_cover", "shadow_cover"))
    if protocol == "rest":
        c = Client(url=stack.url)
        try:
            ans = c.predict_raster(data, names, crs=crs, transform=transform, nodata=nodata, tags=tags,
                                   want_geotiff=True)
        finally:
            c.close()
        mask, cloud, params, tif = ans.mask, ans.cloud_cover, ans.parameters, ans.mask_geotiff
    else:
        got = grpc_raster(stack, tmp_path, scenes[key])
        assert got["status"] == "OK", got
        mask, cloud, params = np.load(tmp_path / "mask.npy"), got["cloud_cover"], got["parameters"]
        tif = (tmp_path / "mask.tif").read_bytes()
    assert np.array_equal(mask, ref.as_numpy("mask"))
    assert cloud == pytest.approx(float(ref.as_numpy("cloud_cover")[0]), abs=1e-7)
    want = ref.get_response()["parameters"]
    assert params["model"] == want["model"]
    # the file's tags travel: the L2A patch's level and offset are read from them as from the file
    assert (params["level"], params["offset"]) == (want["level"], want["offset"])
    with MemoryFile(tif) as m, m.open() as g:
        assert (g.crs, g.transform, g.width, g.height) == (crs, transform, data.shape[2], data.shape[1])


def test_raster_input_in_json_and_with_a_window(stack, scenes):
    data, names, crs, transform, nodata, _ = _read(scenes["l1c4"])
    params = {"bands": ",".join(names), "crs": crs.to_string(), "transform": ",".join(map(repr, transform[:6])),
              "nodata": nodata, "window": "20,10,200,150"}
    body = {"inputs": [{"name": "raster", "shape": list(data.shape), "datatype": "UINT16",
                        "data": data.reshape(-1).tolist()}], "parameters": params}
    resp = httpx.post(f"{stack.url}/v2/models/cloudmask/infer", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    out = {o["name"]: o for o in resp.json()["outputs"]}
    mask = np.array(out["mask"]["data"], np.uint8).reshape(out["mask"]["shape"])
    ref = rest_infer(stack, scenes["l1c4"], params={"window": "20,10,200,150"})
    assert np.array_equal(mask, ref.as_numpy("mask"))


def _post(stack, body):
    return httpx.post(f"{stack.url}/v2/models/cloudmask/infer", json=body, timeout=60)


def _body(data, datatype="UINT16", shape=None, **params):
    return {"inputs": [{"name": "raster", "datatype": datatype, "shape": list(shape or data.shape),
                        "data": np.asarray(data).reshape(-1).tolist()}], "parameters": params}


SIX = "B02,B03,B04,B08,B11,B12"
PIX = np.full((6, 32, 32), 1200, np.uint16)


@pytest.mark.parametrize("body,status,words", [
    (_body(PIX), 400, "`bands`"),
    (_body(PIX, bands="B02,B03,B04"), 400, "6 band(s) but `bands` names 3"),
    (_body(PIX, bands=SIX, transform="10,0,500000"), 400, "six finite affine coefficients"),
    (_body(PIX, bands=SIX, transform="0,0,0,0,0,0"), 400, "invertible"),
    (_body(PIX, bands=SIX, crs="EPSG:not-a-code"), 400, "coordinate reference system"),
    (_body(PIX, bands=SIX, tags="[1, 2]"), 400, "JSON object"),
    (_body(PIX[0], bands=SIX), 400, "[bands, height, width]"),
    (_body(PIX, datatype="BOOL", bands=SIX), 400, "must be one of"),
    (_body(PIX[:, :8], shape=(6, 32, 32), bands=SIX), 400, "could not be read"),
    (_body(PIX, bands=SIX, window="30,0,10,10"), 400, "outside"),
])
def test_bad_raster_input_gets_a_4xx_naming_it(stack, scenes, body, status, words):
    resp = _post(stack, body)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["error"]
    assert rest_infer(stack, scenes["l1c4"]).as_numpy("mask").shape == (260, 300)  # still serving


def test_raster_with_another_input_is_refused(stack):
    body = _body(PIX, bands=SIX)
    body["inputs"].append({"name": "geotiff", "shape": [1], "datatype": "BYTES", "data": ["aa"]})
    resp = _post(stack, body)
    assert resp.status_code == 400 and "'raster' alone" in resp.json()["error"]


def test_raster_over_the_pixel_budget_is_413_over_grpc_and_binary_size_is_checked(stack, tmp_path):
    got = grpc_raster(stack, tmp_path, "--zeros", "6,4200,4200")  # over the default budget of 4096 x 4096
    assert "RESOURCE_EXHAUSTED" in got["status"] and "budget" in got["message"], got
    # REST binary whose bytes do not match the declared shape
    head = json.dumps({"inputs": [{"name": "raster", "shape": [6, 32, 32], "datatype": "UINT16",
                                   "parameters": {"binary_data_size": 100}}],
                       "parameters": {"bands": SIX}}).encode()
    resp = httpx.post(f"{stack.url}/v2/models/cloudmask/infer", content=head + b"\0" * 100, timeout=60,
                      headers={"Inference-Header-Content-Length": str(len(head)),
                               "Content-Type": "application/octet-stream"})
    assert resp.status_code == 400, resp.text
    assert "raster" in resp.json()["error"]


def test_raster_only_parameters_on_a_geotiff_are_refused(stack, scenes):
    """A GeoTIFF carries its own georeferencing: `nodata` and the rest given with one would be ignored, so 400."""
    from test_service import post_json

    resp = post_json(stack, Path(scenes["l1c4"]).read_bytes(), params={"nodata": "0", "crs": "EPSG:4326"})
    assert resp.status_code == 400 and "crs, nodata describe" in resp.json()["error"]


def test_cli_blocks_with_unresolvable_bands_go_as_geotiffs_and_get_the_services_answer(stack, tmp_path):
    """Five undescribed bands name no band set: the client cannot name the pixels, so each block goes as a GeoTIFF
    (sent from GDAL's buffer) and the service's 400 comes back as exit 4; a --block off the 16 px grid is exit 2."""
    path = tmp_path / "five.tif"
    with rasterio.open(path, "w", driver="GTiff", width=700, height=600, count=5, dtype="uint16", crs="EPSG:32633",
                       transform=rasterio.transform.from_origin(500000, 4000000, 10, 10)) as dst:
        dst.write(np.full((5, 600, 700), 1500, np.uint16))
    cli = [sys.executable, "-m", "cloudmask.cli", "predict", str(path), "--out", str(tmp_path / "m.tif")]
    r = subprocess.run(cli + ["--url", stack.url, "--block", "512", "--retries", "0"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 4, r.stderr
    assert "refused the request (400)" in r.stderr and "band" in r.stderr
    r = subprocess.run(cli + ["--url", stack.url, "--block", "1000"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "multiples of 16" in r.stderr, r.stderr
