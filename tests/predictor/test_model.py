"""The predictor's kserve.Model in process: V2 InferRequest in, V2 InferResponse out, bad tensors refused."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from cloudmask import contract
from predictor import baseline
from predictor.model import SegmentationModel
from cloudmask.savedmodel import discover
from cloudmask.raster import scale as scale_ops
from cloudmask.raster import stitch


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("m")
    baseline.export(contract.BASELINE_4B, root, version="3")
    m = SegmentationModel(discover(root)[0])
    assert m.load() and m.ready
    return m


def _request(x, name="reflectance", datatype="FP32"):
    inp = InferInput(name=name, shape=list(x.shape), datatype=datatype)
    inp.set_data_from_numpy(x, binary_data=True)
    return InferRequest(model_name="baseline-4b", infer_inputs=[inp], request_id="r-1")


def test_predict_returns_probabilities_and_version(model):
    x = np.random.default_rng(1).random((2, 32, 48, 4), dtype=np.float32)
    res = asyncio.run(model.predict(_request(x)))
    out = res.outputs[0]
    assert (out.name, out.datatype, out.shape) == ("probabilities", "FP32", [2, 32, 48, 3])
    np.testing.assert_allclose(out.as_numpy().sum(-1), 1.0, atol=1e-5)
    assert res.model_version == "3" and res.id == "r-1"


def test_metadata_shapes(model):
    assert model.get_input_types() == [{"name": "reflectance", "datatype": "FP32", "shape": [-1, -1, -1, 4]},
                                       {"name": "dn", "datatype": "UINT16", "shape": [-1, -1, -1, 4]}]
    assert model.get_output_types() == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, -1, -1, 3]},
                                        {"name": "probabilities_u8", "datatype": "UINT8", "shape": [-1, -1, -1, 3]},
                                        {"name": "classes", "datatype": "UINT8", "shape": [-1, -1, -1]}]


def _dn_request(dn, outputs=(), **params):
    inp = InferInput(name="dn", shape=list(dn.shape), datatype="UINT16", parameters=params or None)
    inp.set_data_from_numpy(dn, binary_data=True)
    return InferRequest(model_name="baseline-4b", infer_inputs=[inp], request_id="r-2",
                        request_outputs=[RequestedOutput(o) for o in outputs] or None)


@pytest.mark.parametrize("params", [{}, {"scale": "10000", "offset": "-1000"}, {"scale": 10000, "offset": -1000},
                                    {"scale": "5000.5", "offset": "12"}])
def test_dn_input_gives_bit_identical_probabilities(model, params):
    """UINT16 DN scaled by the predictor == FP32 reflectance scaled by the transformer, bit for bit."""
    dn = np.random.default_rng(2).integers(0, 12000, (2, 32, 48, 4)).astype(np.uint16)
    dn[0, 0, :4] = [0, 1, 65535, 10000]
    scale, offset = float(params.get("scale", 10000)), float(params.get("offset", 0))
    # the transformer's FP32 path: (bands, H, W) DN -> (H, W, bands) reflectance
    refl = scale_ops.to_reflectance(np.moveaxis(dn.reshape(64, 48, 4), -1, 0), scale, offset).reshape(dn.shape)
    want = asyncio.run(model.predict(_request(refl))).outputs[0].as_numpy()
    got = asyncio.run(model.predict(_dn_request(dn, **params))).outputs[0]
    assert (got.name, got.datatype) == ("probabilities", "FP32")
    np.testing.assert_array_equal(got.as_numpy(), want)


def test_requested_outputs_classes_and_quantised(model):
    x = np.random.default_rng(3).random((1, 32, 32, 4), dtype=np.float32)
    probs = asyncio.run(model.predict(_request(x))).outputs[0].as_numpy()
    req = _request(x)
    req.request_outputs = [RequestedOutput("classes"), RequestedOutput("probabilities_u8"),
                           RequestedOutput("probabilities")]
    res = asyncio.run(model.predict(req))
    assert [(o.name, o.datatype, o.shape) for o in res.outputs] == [
        ("classes", "UINT8", [1, 32, 32]), ("probabilities_u8", "UINT8", [1, 32, 32, 3]),
        ("probabilities", "FP32", [1, 32, 32, 3])]
    classes, q, p = (o.as_numpy() for o in res.outputs)
    np.testing.assert_array_equal(p, probs)
    np.testing.assert_array_equal(classes, stitch.to_mask(probs))
    np.testing.assert_array_equal(classes, np.argmax(probs, axis=-1))
    assert np.abs(q / 255.0 - probs).max() <= 0.5 / 255 + 1e-6


def test_unknown_output_is_refused(model):
    req = _request(np.zeros((1, 32, 32, 4), np.float32))
    req.request_outputs = [RequestedOutput("logits")]
    with pytest.raises(InvalidInput, match="unknown output"):
        asyncio.run(model.predict(req))


@pytest.mark.parametrize("params,words", [({"scale": "ten"}, "must be numbers"), ({"scale": "0"}, "positive"),
                                          ({"offset": "nan"}, "finite")])
def test_dn_bad_parameters_are_refused(model, params, words):
    with pytest.raises(InvalidInput, match=words):
        asyncio.run(model.predict(_dn_request(np.zeros((1, 32, 32, 4), np.uint16), **params)))


def test_dn_parameter_of_unreadable_grpc_type_is_refused(model):
    """A float sent as gRPC double_param arrives with no value in kserve's proto: refused, not the default."""
    from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter

    with pytest.raises(InvalidInput, match="'scale' has a type"):
        asyncio.run(model.predict(_dn_request(np.zeros((1, 32, 32, 4), np.uint16), scale=InferParameter())))
    ok = _dn_request(np.zeros((1, 32, 32, 4), np.uint16), scale=InferParameter(string_param="10000"))
    assert asyncio.run(model.predict(ok)).outputs[0].shape == [1, 32, 32, 3]


@pytest.mark.parametrize("kwargs,words", [
    ({"x": np.zeros((1, 32, 32, 6), np.float32)}, "[N, H, W, 4]"),
    ({"x": np.zeros((1, 30, 32, 4), np.float32)}, "multiples of 16"),
    ({"x": np.zeros((1, 32, 32, 4), np.float32), "name": "image"}, "unknown input"),
    ({"x": np.zeros((1, 32, 32, 4), np.float64), "datatype": "FP64"}, "must be FP32"),
    ({"x": np.zeros((1, 32, 32, 4), np.float32), "name": "dn"}, "must be UINT16"),
    ({"x": np.zeros((1, 32, 32, 6), np.uint16), "name": "dn", "datatype": "UINT16"}, "[N, H, W, 4]"),
])
def test_bad_tensors_are_refused(model, kwargs, words):
    x = kwargs.pop("x")
    with pytest.raises(InvalidInput) as e:
        asyncio.run(model.predict(_request(x, **kwargs)))
    assert words in str(e.value)


def test_payload_shorter_than_its_shape_is_refused(model):
    """A REST binary body whose bytes do not fill the declared shape."""
    inp = InferInput(name="reflectance", shape=[2, 32, 32, 4], datatype="FP32")
    inp._raw_data = np.zeros((1, 32, 32, 4), np.float32).tobytes()
    with pytest.raises(InvalidInput, match="does not match shape"):
        asyncio.run(model.predict(InferRequest(model_name="baseline-4b", infer_inputs=[inp])))


def test_tf_calls_never_overlap_and_at_most_two_calls_hold_scaled_inputs(model, monkeypatch):
    """Only the TF call is serialised; scaling and deriving outputs run beside it, for at most two calls at once
    (each scaled input is float32: waiting calls must not all scale ahead)."""
    import threading
    import time

    state = {"tf": 0, "tf_max": 0, "scaled": 0, "scaled_max": 0}
    lock = threading.Lock()
    real_runner, real_scale, real_derive = model.runner, model._scale, model._derive

    def bump(key, d):
        with lock:
            state[key] += d
            state[key + "_max"] = max(state[key + "_max"], state[key])

    def runner(x):
        bump("tf", 1)
        time.sleep(0.02)
        try:
            return real_runner(x)
        finally:
            bump("tf", -1)

    def scale(x, scaling):
        bump("scaled", 1)
        return real_scale(x, scaling)

    def derive(probs, names):
        try:
            return real_derive(probs, names)
        finally:
            bump("scaled", -1)  # the call's scaled input is gone after this

    monkeypatch.setattr(model, "runner", runner)
    monkeypatch.setattr(model, "_scale", scale)
    monkeypatch.setattr(model, "_derive", derive)
    x = np.random.default_rng(2).random((1, 32, 32, 4), dtype=np.float32)

    async def many():
        return await asyncio.gather(*(model.predict(_request(x)) for _ in range(8)))

    results = asyncio.run(many())
    assert len(results) == 8 and state["tf_max"] == 1 and state["scaled_max"] == 2
