"""Hostile input against the real service: every bad request is a 4xx naming the problem, on REST JSON, REST
binary and gRPC, costs no more than its budget, and the same connection then gets the right answer."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio

from tiffcraft import non_utf8_description, strip_bomb
from test_service import HERE, tif_bytes

pytestmark = pytest.mark.e2e

INFER = "/v2/models/cloudmask/infer"


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def json_body(tif: bytes, params=None, **input_fields) -> dict:
    inp = {"name": "geotiff", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(tif).decode()]}
    inp.update(input_fields)
    return {"inputs": [inp], **({"parameters": params} if params else {})}


def mask_of(resp: httpx.Response) -> np.ndarray:
    assert resp.status_code == 200, resp.text[:300]
    out = {o["name"]: o for o in resp.json()["outputs"]}
    return np.array(out["mask"]["data"], dtype=np.uint8).reshape(out["mask"]["shape"])


def binary_body(tif: bytes, head_override=None, size=None, prefix=None):
    """A REST binary-extension request: JSON head, then the BYTES element (4-byte length + file)."""
    blob = (struct.pack("<I", len(tif)) if prefix is None else prefix) + tif
    head = {"inputs": [{"name": "geotiff", "shape": [1], "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(blob) if size is None else size}}]}
    raw = json.dumps(head if head_override is None else head_override).encode()
    return raw + blob, len(raw)


@pytest.fixture(scope="module")
def good(scenes):
    """A real 4-band L1C file and the service's mask for it, for the after-each-bad-request check."""
    return Path(scenes["l1c4"]).read_bytes()


@pytest.fixture(scope="module")
def reference(stack, good):
    return mask_of(httpx.post(stack.url + INFER, json=json_body(good), timeout=120))


def _hostile_files(scenes) -> dict[str, tuple[bytes, dict, int, str]]:
    """name -> (file, parameters, HTTP status, words the error must hold)."""
    with rasterio.open(scenes["l1c4"]) as src:
        data, desc = src.read(), src.descriptions
    named = tif_bytes(data[:, :64, :64], descriptions=("B02", "B03", "B04", "QQQQ"))
    return {
        # ~170 bytes declaring one deflate strip of 20000^2 x 4 uint16 (3.2 GB): before the decode budget the
        # transformer decoded it all (8.5 s, +3 GB) for a 512 px window and then answered 400 "Read failed"
        "strip bomb, windowed": (strip_bomb(20000, 20000, bands=4), {"window": "0,0,512,512"},
                                 413, "decode budget"),
        "strip bomb 100000^2": (strip_bomb(100000, 100000, bands=4), {"window": [0, 0, 512, 512]}, 413,
                                "decode budget"),
        "non-UTF-8 band description": (non_utf8_description(named, "QQQQ"), {}, 400, "not valid UTF-8"),
        "complex pixels": (tif_bytes((data[:, :32, :32] + 1j).astype(np.complex64), descriptions=desc, nodata=None),
                           {}, 400, "complex64 is not supported"),
        "scale true": (tif_bytes(data, descriptions=desc), {"scale": True}, 400, "scale must be a number"),
        "offset 1e39": (tif_bytes(data, descriptions=desc), {"offset": "1e39"}, 400, "offset must be finite and within"),
        "offset -1e300": (tif_bytes(data, descriptions=desc), {"offset": -1e300}, 400, "within"),
        "scale 0": (tif_bytes(data, descriptions=desc), {"scale": 0}, 400, "positive"),
        "window list, outside": (tif_bytes(data, descriptions=desc), {"window": [250, 0, 100, 100]}, 400, "outside"),
    }


HOSTILE = ["strip bomb, windowed", "strip bomb 100000^2", "non-UTF-8 band description", "complex pixels",
           "scale true", "offset 1e39", "offset -1e300", "scale 0", "window list, outside"]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_file_rest_json(stack, scenes, good, reference, case):
    tif, params, status, words = _hostile_files(scenes)[case]
    tr = stack.procs[-1].pid
    before = peak_rss_mb(tr)
    with httpx.Client(base_url=stack.url, timeout=120) as c:  # one keep-alive connection
        t0 = time.perf_counter()
        r = c.post(INFER, json=json_body(tif, params))
        seconds = time.perf_counter() - t0
        assert r.status_code == status, r.text[:300]
        assert words in r.json()["error"]
        np.testing.assert_array_equal(mask_of(c.post(INFER, json=json_body(good))), reference)
    assert seconds < 5
    assert peak_rss_mb(tr) - before < 300, "a refused request must not decode its pixels"


@pytest.mark.parametrize("case", ["strip bomb, windowed", "non-UTF-8 band description", "complex pixels"])
def test_hostile_file_rest_binary(stack, scenes, good, reference, case):
    tif, params, status, words = _hostile_files(scenes)[case]
    body, n = binary_body(tif)
    head = json.loads(body[:n])
    head["parameters"] = params
    body, n = binary_body(tif, head_override=head)
    with httpx.Client(base_url=stack.url, timeout=120) as c:
        r = c.post(INFER, content=body, headers={"Inference-Header-Content-Length": str(n)})
        assert r.status_code == status, r.text[:300]
        assert words in r.json()["error"]
        np.testing.assert_array_equal(mask_of(c.post(INFER, json=json_body(good))), reference)


def test_hostile_files_grpc(stack, scenes, good, reference, tmp_path):
    """The same catalogue over gRPC on one channel, a good request after each (gRPC parameters are scalars)."""
    files = _hostile_files(scenes)
    (tmp_path / "good.tif").write_bytes(good)
    cases, want = [], []
    for i, (name, (tif, params, status, words)) in enumerate(files.items()):
        if any(isinstance(v, list) for v in params.values()):
            params = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in params.items()}
        if isinstance(params.get("offset"), float):
            params["offset"] = repr(params["offset"])  # kserve's gRPC parameters carry no doubles
        (tmp_path / f"{i}.tif").write_bytes(tif)
        cases += [{"path": str(tmp_path / f"{i}.tif"), "params": params}, {"path": str(tmp_path / "good.tif")}]
        want.append((name, "StatusCode.RESOURCE_EXHAUSTED" if status == 413 else "StatusCode.INVALID_ARGUMENT",
                     words))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    out = subprocess.run([sys.executable, str(HERE / "grpc_call.py"), f"127.0.0.1:{stack.grpc_port}", "--batch",
                          str(tmp_path / "cases.json")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for (name, code, words), bad, ok in zip(want, results[0::2], results[1::2]):
        assert (bad["status"], words in bad.get("message", "")) == (code, True), (name, bad)
        assert ok["status"] == "OK", (name, ok)
        np.testing.assert_array_equal(np.load(ok["mask"]), reference)


# -- framing: the request itself is malformed -------------------------------------------------------

def _framings(good: bytes) -> dict[str, tuple[bytes, dict, str]]:
    """name -> (body, headers, words the 400's error must hold)."""
    body, n = binary_body(good)
    head = json.loads(body[:n])
    return {
        "JSON: malformed": (b'{"inputs": [', {"Content-Type": "application/json"}, "not valid JSON"),
        "JSON: inputs not a list": (json.dumps({"inputs": {"name": "geotiff"}}).encode(),
                                    {"Content-Type": "application/json"}, "inputs: Input should be a valid list"),
        "JSON: input without datatype": (json.dumps({"inputs": [{"name": "geotiff", "shape": [1], "data": ["x"]}]})
                                         .encode(), {"Content-Type": "application/json"}, "inputs.0.datatype: Field required"),
        "binary: header not a number": (body, {"Inference-Header-Content-Length": "abc"},
                                        "Inference-Header-Content-Length"),
        "binary: header past the body": (body, {"Inference-Header-Content-Length": str(len(body) + 10)},
                                         "Inference-Header-Content-Length"),
        "binary: header negative": (body, {"Inference-Header-Content-Length": "-5"}, "Inference-Header-Content-Length"),
        "binary: header cuts the JSON": (body, {"Inference-Header-Content-Length": str(n - 3)}, "not valid JSON"),
        "binary: size not a number": (binary_body(good, size="x")[0],
                                      {"Inference-Header-Content-Length": str(binary_body(good, size="x")[1])},
                                      "binary_data_size must be a byte count"),
        "binary: no length prefix": (binary_body(good[:3], prefix=b"", size=3)[0],
                                     {"Inference-Header-Content-Length": str(binary_body(good[:3], prefix=b"",
                                                                                         size=3)[1])},
                                     "4 bytes (little-endian)"),
        "binary: inputs not a list": (binary_body(good, head_override={"inputs": 5})[0],
                                      {"Inference-Header-Content-Length":
                                       str(binary_body(good, head_override={"inputs": 5})[1])}, '"inputs" is a list'),
        "binary: shape not a list": (binary_body(good, head_override={"inputs": [dict(head["inputs"][0], shape=1)]})[0],
                                     {"Inference-Header-Content-Length": str(binary_body(
                                         good, head_override={"inputs": [dict(head["inputs"][0], shape=1)]})[1])},
                                     "shape"),
    }


FRAMINGS = ["JSON: malformed", "JSON: inputs not a list", "JSON: input without datatype",
            "binary: header not a number", "binary: header past the body", "binary: header negative",
            "binary: header cuts the JSON", "binary: size not a number", "binary: no length prefix",
            "binary: inputs not a list", "binary: shape not a list"]


@pytest.mark.parametrize("case", FRAMINGS)
def test_bad_framing_is_400_and_connection_survives(stack, good, reference, case):
    body, headers, words = _framings(good)[case]
    with httpx.Client(base_url=stack.url, timeout=60) as c:
        r = c.post(INFER, content=body, headers=headers)
        assert r.status_code == 400, r.text[:300]
        assert words in r.json()["error"], r.text[:300]
        np.testing.assert_array_equal(mask_of(c.post(INFER, json=json_body(good))), reference)


# -- inputs are what they say -----------------------------------------------------------------------

def test_json_list_parameters_work(stack, scenes, good, reference):
    """The documented list forms of `window` and `bands` (kserve's REST model took scalars only: 422)."""
    with rasterio.open(scenes["l1c4"]) as src:
        data = src.read()
    r = httpx.post(stack.url + INFER, json=json_body(good, {"window": [10, 20, 100, 50]}), timeout=120)
    assert mask_of(r).shape == (50, 100)
    r = httpx.post(stack.url + INFER, json=json_body(tif_bytes(data), {"bands": ["B02", "B03", "B04", "B08"]}),
                   timeout=120)
    np.testing.assert_array_equal(mask_of(r), reference)
    assert r.json()["parameters"]["input_bands"] == "B02,B03,B04,B08"


def test_float_reflectance_file_is_read_as_reflectance(stack, scenes, reference):
    """A float file of reflectance 0..1 gives the mask of the same pixels as DN; `scale` still overrides it,
    and +-Inf pixels are nodata (255), not cloud."""
    with rasterio.open(scenes["l1c4"]) as src:
        data, desc = src.read(), src.descriptions
    refl = data.astype(np.float32) * np.float32(1.0 / 10000)  # what the predictor computes from the DN
    r = httpx.post(stack.url + INFER, json=json_body(tif_bytes(refl, descriptions=desc)), timeout=120)
    np.testing.assert_array_equal(mask_of(r), reference)
    assert r.json()["parameters"]["scale"] == "1"
    dark = httpx.post(stack.url + INFER, json=json_body(tif_bytes(refl, descriptions=desc), {"scale": 10000}),
                      timeout=120)
    assert dark.json()["parameters"]["scale"] == "10000"
    assert np.count_nonzero(mask_of(dark) == 1) == 0  # read as DN: 1e-4 of the brightness, a black scene
    refl[:, 10:20, :] = np.inf
    refl[0, 30:35, :] = -np.inf
    inf = mask_of(httpx.post(stack.url + INFER, json=json_body(tif_bytes(refl, descriptions=desc)), timeout=120))
    assert (inf[10:20] == 255).all() and (inf[30:35] == 255).all()
