"""What cloudmask adds to kserve's ModelServer (cloudmask/server.py), in process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse

from cloudmask import server


def _body(inputs, blobs):
    head = json.dumps({"id": "x", "inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    return head + b"".join(blobs), len(head)


@pytest.fixture(autouse=True, scope="module")
def patched():
    server.keep_binary_tensors()


def test_binary_bytes_input_stays_bytes():
    """A GeoTIFF is not UTF-8: kserve 0.21 itself fails on it (it turns binary inputs into str lists)."""
    tif = b"II*\x00" + bytes(range(256)) * 4
    blob = len(tif).to_bytes(4, "little") + tif
    body, n = _body([{"name": "geotiff", "shape": [1], "datatype": "BYTES",
                      "parameters": {"binary_data_size": len(blob)}}], [blob])
    req = InferRequest.from_bytes(body, n, "cloudmask")
    assert req.inputs[0].as_numpy()[0] == tif
    assert req.id == "x" and req.use_binary_outputs


def test_binary_fp32_input_is_read_without_a_list():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    body, n = _body([{"name": "reflectance", "shape": [1, 2, 3, 4], "datatype": "FP32",
                      "parameters": {"binary_data_size": x.nbytes}}], [x.tobytes()])
    inp = InferRequest.from_bytes(body, n, "m").inputs[0]
    assert inp.data is None  # nothing was converted to a Python list
    np.testing.assert_array_equal(inp.as_numpy(), x)


@pytest.mark.parametrize("inputs,blobs,words", [
    ([{"name": "a", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 64}}], [b"\0" * 16],
     "past the end"),
    ([{"name": "a", "shape": [1], "datatype": "FP32"}], [], "'data' field is missing"),
    ([{"shape": [1], "datatype": "FP32", "data": [1.0]}], [], "malformed input"),
])
def test_malformed_binary_requests_are_invalid_input(inputs, blobs, words):
    body, n = _body(inputs, blobs)
    with pytest.raises(InvalidInput, match=words):
        InferRequest.from_bytes(body, n, "m")


def test_response_keeps_raw_outputs_and_model_version():
    p = np.random.default_rng(0).random((1, 4, 4, 3), dtype=np.float32)
    head = json.dumps({"id": "r", "model_name": "cloudmask-6b", "model_version": "7", "outputs": [
        {"name": "probabilities", "shape": [1, 4, 4, 3], "datatype": "FP32",
         "parameters": {"binary_data_size": p.nbytes}}]}).encode()
    res = InferResponse.from_bytes(head + p.tobytes(), len(head))
    assert res.model_version == "7"
    np.testing.assert_array_equal(res.outputs[0].as_numpy(), p)


def test_bind_rewrites_the_rest_listener():
    from kserve.protocol.rest.server import RESTServer

    server.bind("127.0.0.1")
    rs = RESTServer("kserve.model_server:app", None, None, http_port=0)
    assert rs.config.host == "127.0.0.1"


def test_grpc_limits_are_raised_unless_given():
    from kserve import model_server as ms

    ms.args.grpc_max_send_message_length = ms.args.grpc_max_receive_message_length = 1000
    server.raise_grpc_message_limits(["--grpc_max_send_message_length=1000"])
    assert ms.args.grpc_max_receive_message_length == server.GRPC_MESSAGE_BYTES
    assert ms.args.grpc_max_send_message_length == 1000  # given on the command line: left alone
