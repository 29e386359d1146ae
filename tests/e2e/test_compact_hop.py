"""The transformer -> predictor hop in its compact forms (UINT16 `dn` in; `classes`, FP32 or uint8
probabilities out), end to end over real sockets, checked against the model called in process on
the FP32 reflectance the transformer used to send: the masks must not change.

Also: clients that talk to the predictor directly keep getting what they always got (FP32
reflectance in, FP32 probabilities out) and can use the compact forms over gRPC and REST.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from kserve.inference_client import InferenceGRPCClient
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from cloudmask import contract, samples
from cloudmask.supervisor import Stack
from cloudmask.savedmodel import Runner, discover
from cloudmask.raster import scale as scale_ops
from cloudmask.raster import stitch, tile

from test_service import FAMILY, rest_infer, tif_bytes

pytestmark = pytest.mark.e2e
MODELS = Path(os.environ.get("CLOUDMASK_MODELS") or Path(__file__).resolve().parents[2] / "models")  # as the predictor


@pytest.fixture(scope="module")
def runners():
    return {m.contract.name: Runner(m.path) for m in discover(MODELS)}


def reference_mask(runners, path, batch=4, overlap=64, how="crop") -> np.ndarray:
    """The service's answer computed here the way the transformer computed it before the compact
    hop: FP32 reflectance chips, the SavedModel, then argmax and each chip's span (crop, the default
    --stitch) or FP32 blending and argmax (blend)."""
    with rasterio.open(path) as src:
        data, nodata, names, tags = src.read(), src.nodata, src.descriptions, src.tags()
    from cloudmask.raster import level

    lvl = level.from_tags(tags) or level.from_bands(names) or contract.UNKNOWN_LEVEL  # the samples carry level tags
    model = contract.route(FAMILY, names, lvl)
    data = data[[names.index(b) for b in model.bands]]
    offset = scale_ops.file_offset(tags) or 0.0
    image = scale_ops.to_reflectance(data, contract.DEFAULT_SCALE, offset, model.value_range)
    tp = tile.fitted(image.shape[0], image.shape[1], contract.MAX_CHIP, overlap)  # the service's chips
    st = stitch.Stitcher(tp) if how == "blend" else stitch.CropStitcher(tp)
    for pos in tile.batches(tp, batch, contract.BATCH_PIXELS):
        p = runners[model.name](tile.chips(image, tp, pos))
        st.add(p if how == "blend" else contract.classes(p), pos)
    invalid = scale_ops.nodata_mask(data, nodata)
    return stitch.to_mask(st.probabilities(), invalid) if how == "blend" else st.mask(invalid)


@pytest.fixture(scope="module")
def chip512(scenes, tmp_path_factory):
    """One 512 x 512 chip: the benchmark's case, a single predictor call answered with `classes`."""
    return samples.l1c_scene(tmp_path_factory.mktemp("chip") / "chip512.tif", bands=contract.BANDS_6,
                             window=(600, 700, 512, 512))


@pytest.mark.parametrize("key", ["chip512", "l1c4", "l2a12", "l1c6", "l1c13"])
def test_masks_equal_the_fp32_path(stack, scenes, chip512, runners, key):
    """One chip (512; smaller, padded; 700 x 600, one chip sized to it), and two chips cropped (1100 x 1000):
    pixel for pixel."""
    path = chip512 if key == "chip512" else scenes[key]
    r = rest_infer(stack, path)
    assert r.get_response()["parameters"]["chips"] == (2 if key == "l1c13" else 1)
    got, want = r.as_numpy("mask"), reference_mask(runners, path)
    assert got.shape == want.shape
    assert np.count_nonzero(got != want) == 0, f"{np.count_nonzero(got != want)} of {got.size} px differ"


def test_float_geotiff_takes_the_fp32_path_with_the_same_mask(stack, scenes, tmp_path):
    """A float32 file cannot travel as UINT16 DN: it goes as FP32 reflectance, same answer."""
    with rasterio.open(scenes["l1c6"]) as src:
        data, desc = src.read(), src.descriptions
    as_float = tmp_path / "float.tif"
    as_float.write_bytes(tif_bytes(data.astype(np.float32), descriptions=desc))
    as_int = tmp_path / "int.tif"
    as_int.write_bytes(tif_bytes(data, descriptions=desc))
    np.testing.assert_array_equal(rest_infer(stack, as_float).as_numpy("mask"),
                                  rest_infer(stack, as_int).as_numpy("mask"))


def test_blending_fp32_exact_uint8_close_crop_close(stack, scenes, runners, tmp_path):
    """--stitch blend: FP32 probabilities blend to the in-process blended mask exactly; with --hop_probabilities
    uint8 they may differ where two classes are within 1/255. The default (crop) differs from blending only near
    where chips meet. A one-chip request (classes) is the same every way."""
    crop_multi = rest_infer(stack, scenes["l1c13"]).as_numpy("mask")
    ref_single = rest_infer(stack, scenes["l1c4"]).as_numpy("mask")
    blended = reference_mask(runners, scenes["l1c13"], how="blend")
    for extra in (["--stitch=blend"], ["--stitch=blend", "--hop_probabilities=uint8"]):
        with Stack(http_port=0, grpc_port=0, model_family=FAMILY, log_dir=tmp_path, extra_transformer_args=extra) as s2:
            multi = rest_infer(s2, scenes["l1c13"]).as_numpy("mask")
            single = rest_infer(s2, scenes["l1c4"]).as_numpy("mask")
        np.testing.assert_array_equal(single, ref_single)
        if extra[-1] == "--stitch=blend":
            np.testing.assert_array_equal(multi, blended)
        else:
            assert np.count_nonzero(multi != blended) <= 0.001 * multi.size
    assert 0 < np.count_nonzero(crop_multi != blended) <= 0.01 * blended.size


# -- clients of the predictor itself ------------------------------------------------------------

def _chips(n_bands, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 6000, (2, 64, 64, n_bands)).astype(np.uint16)


def test_predictor_grpc_dn_and_classes_match_fp32(stack):
    """A gRPC client (kserve's own) sends DN and asks for classes; the same chips as FP32
    reflectance with no outputs named give FP32 probabilities, as before."""
    model = contract.FAMILIES[FAMILY][0]
    dn = _chips(model.n_bands)
    refl = contract.dn_to_reflectance(dn, 10000, -1000, model.value_range)

    async def go():
        c = InferenceGRPCClient(f"127.0.0.1:{stack.p_grpc}")
        try:
            fp = InferInput(model.input_name, list(refl.shape), "FP32")
            fp.set_data_from_numpy(refl, binary_data=True)
            r1 = await c.infer(InferRequest(model_name=model.name, infer_inputs=[fp]))
            di = InferInput("dn", list(dn.shape), "UINT16", parameters={"scale": "10000", "offset": "-1000"})
            di.set_data_from_numpy(dn, binary_data=True)
            r2 = await c.infer(InferRequest(model_name=model.name, infer_inputs=[di],
                                            request_outputs=[RequestedOutput("classes"),
                                                             RequestedOutput("probabilities")]))
            return r1, r2
        finally:
            await c.close()

    r1, r2 = asyncio.run(go())
    assert [(o.name, o.datatype) for o in r1.outputs] == [("probabilities", "FP32")]
    assert [(o.name, o.datatype, list(o.shape)) for o in r2.outputs] == [
        ("classes", "UINT8", [2, 64, 64]), ("probabilities", "FP32", [2, 64, 64, 3])]
    probs = r1.outputs[0].as_numpy()
    np.testing.assert_array_equal(r2.outputs[1].as_numpy(), probs)
    np.testing.assert_array_equal(r2.outputs[0].as_numpy(), np.argmax(probs, axis=-1))


def test_predictor_rest_json_fp32_and_dn(stack):
    """REST JSON, no binary extension: FP32 reflectance as before, and DN with quantised output."""
    model = contract.FAMILIES[FAMILY][0]
    dn = _chips(model.n_bands, seed=1)[:1, :32, :32]
    refl = contract.dn_to_reflectance(dn)
    url = f"{stack.predictor_url}/v2/models/{model.name}/infer"
    body1 = {"inputs": [{"name": model.input_name, "datatype": "FP32", "shape": list(refl.shape),
                         "data": refl.ravel().tolist()}]}
    r1 = httpx.post(url, json=body1, timeout=60)
    assert r1.status_code == 200, r1.text
    out1 = r1.json()["outputs"]
    assert [(o["name"], o["datatype"]) for o in out1] == [("probabilities", "FP32")]
    probs = np.array(out1[0]["data"], np.float32).reshape(out1[0]["shape"])
    body2 = {"inputs": [{"name": "dn", "datatype": "UINT16", "shape": list(dn.shape), "data": dn.ravel().tolist()}],
             "outputs": [{"name": "probabilities_u8"}]}
    r2 = httpx.post(url, json=body2, timeout=60)
    assert r2.status_code == 200, r2.text
    out2 = r2.json()["outputs"]
    assert [(o["name"], o["datatype"], o["shape"]) for o in out2] == [("probabilities_u8", "UINT8", [1, 32, 32, 3])]
    np.testing.assert_array_equal(np.array(out2[0]["data"], np.uint8).reshape(out2[0]["shape"]),
                                  contract.quantise(probs))


@pytest.mark.parametrize("body,words", [
    ({"inputs": [{"name": "dn", "datatype": "FP32", "shape": [1, 16, 16, 0], "data": []}]}, "must be UINT16"),
    ({"inputs": [{"name": "dn", "datatype": "UINT16", "shape": [1, 16, 16, 1], "data": [0] * 256}]}, "[N, H, W,"),
    ({"inputs": [{"name": "reflectance", "datatype": "FP32", "shape": [1, 16, 16, 6], "data": [0.0] * 1536}],
      "outputs": [{"name": "logits"}]}, "unknown output"),
])
def test_predictor_refuses_bad_compact_requests(stack, body, words):
    model = contract.FAMILIES[FAMILY][0]
    assert model.n_bands == 6
    r = httpx.post(f"{stack.predictor_url}/v2/models/{model.name}/infer", json=body, timeout=60)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]
    assert httpx.get(f"{stack.predictor_url}/v2/health/ready", timeout=10).status_code == 200
