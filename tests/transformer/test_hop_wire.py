"""transformer.hop: the hand-serialised gRPC request is the ModelInferRequest protobuf would write,
and the response's raw tensors come back as arrays."""

from __future__ import annotations

import numpy as np
import pytest
from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter, ModelInferRequest, ModelInferResponse

from transformer import hop


@pytest.mark.parametrize("dtype,datatype", [(np.uint16, "UINT16"), (np.float32, "FP32")])
def test_grpc_request_bytes_parse_back(dtype, datatype):
    arr = np.arange(2 * 16 * 32 * 6).astype(dtype).reshape(2, 16, 32, 6)
    view = np.moveaxis(np.moveaxis(arr, -1, 0).copy(), 0, -1)  # a non-contiguous view: copied in order
    h = hop.Hop("cloudmask-6b", "req-1", "dn", datatype, view, ("classes", "probabilities"),
                {"scale": "10000.0", "offset": "-1000.0"})
    raw = hop.grpc_request_bytes(h)
    req = ModelInferRequest.FromString(raw)
    assert (req.model_name, req.id) == ("cloudmask-6b", "req-1")
    (t,) = req.inputs
    assert (t.name, t.datatype, list(t.shape)) == ("dn", datatype, [2, 16, 32, 6])
    assert {k: v.string_param for k, v in t.parameters.items()} == {"scale": "10000.0", "offset": "-1000.0"}
    assert [o.name for o in req.outputs] == ["classes", "probabilities"]
    assert len(req.raw_input_contents) == 1
    np.testing.assert_array_equal(np.frombuffer(req.raw_input_contents[0], dtype).reshape(arr.shape), arr)
    # the same message as protobuf's own serialisation, field for field
    ref = ModelInferRequest(model_name="cloudmask-6b", id="req-1", raw_input_contents=[arr.tobytes()],
                            inputs=[ModelInferRequest.InferInputTensor(name="dn", datatype=datatype,
                                                                      shape=[2, 16, 32, 6])],
                            outputs=[ModelInferRequest.InferRequestedOutputTensor(name=o)
                                     for o in ("classes", "probabilities")])
    for k in ("scale", "offset"):
        ref.inputs[0].parameters[k].CopyFrom(InferParameter(string_param=h.parameters[k]))
    assert req == ref


def test_grpc_response_views_raw_outputs():
    cls = np.array([[0, 1], [2, 1]], np.uint8)[None]
    probs = np.random.default_rng(0).random((1, 2, 2, 3), dtype=np.float32)
    res = ModelInferResponse(model_name="m", model_version="7", raw_output_contents=[cls.tobytes(), probs.tobytes()],
                             outputs=[ModelInferResponse.InferOutputTensor(name="classes", datatype="UINT8",
                                                                          shape=[1, 2, 2]),
                                      ModelInferResponse.InferOutputTensor(name="probabilities", datatype="FP32",
                                                                          shape=[1, 2, 2, 3])])
    version, arrays = hop.grpc_response(ModelInferResponse.FromString(res.SerializeToString()))
    assert version == "7"
    np.testing.assert_array_equal(arrays["classes"], cls)
    np.testing.assert_array_equal(arrays["probabilities"], probs)


def test_grpc_response_without_raw_contents_is_an_error():
    res = ModelInferResponse(outputs=[ModelInferResponse.InferOutputTensor(name="classes", datatype="UINT8",
                                                                          shape=[1])])
    with pytest.raises(RuntimeError, match="raw output"):
        hop.grpc_response(res)


def test_rest_request_carries_the_tensor_and_parameters():
    arr = np.arange(16 * 16 * 4, dtype=np.uint16).reshape(1, 16, 16, 4)
    req = hop.rest_request(hop.Hop("m", "r", "dn", "UINT16", arr, ("classes",), {"scale": "1.0"}))
    (inp,) = req.inputs
    assert (inp.name, inp.datatype, inp.shape) == ("dn", "UINT16", [1, 16, 16, 4])
    assert inp.parameters["scale"] == "1.0" and inp.parameters["binary_data_size"] == arr.nbytes
    np.testing.assert_array_equal(inp.as_numpy(), arr)
    assert [o.name for o in req.request_outputs] == ["classes"]
