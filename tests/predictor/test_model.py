"""The predictor's kserve.Model in process: V2 InferRequest in, V2 InferResponse out, bad tensors refused."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from cloudmask import contract
from predictor import baseline
from predictor.model import SegmentationModel
from predictor.savedmodel import discover


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
    assert model.get_input_types() == [{"name": "reflectance", "datatype": "FP32", "shape": [-1, -1, -1, 4]}]
    assert model.get_output_types() == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, -1, -1, 3]}]


@pytest.mark.parametrize("kwargs,words", [
    ({"x": np.zeros((1, 32, 32, 6), np.float32)}, "[N, H, W, 4]"),
    ({"x": np.zeros((1, 30, 32, 4), np.float32)}, "multiples of 16"),
    ({"x": np.zeros((1, 32, 32, 4), np.float32), "name": "image"}, "unknown input"),
    ({"x": np.zeros((1, 32, 32, 4), np.float64), "datatype": "FP64"}, "must be FP32"),
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
