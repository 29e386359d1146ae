"""The transformer -> predictor hop: one batch of chips out, the predictor's tensors back.

What goes on the wire (cloudmask.contract): the chips as UINT16 `dn` when the file's pixels are
8- or 16-bit integers (half the bytes of FP32 reflectance; the predictor scales them itself, bit
for bit as the transformer would), else FP32 `reflectance`; back come the outputs asked for by
name (`classes` for a one-chip request, `probabilities_u8` or `probabilities` for blending).

gRPC without kserve's copies: kserve's client turns an array into bytes (tobytes), then into a
ModelInferRequest (copies), which grpc serialises (another copy). Here the small header is
serialised by protobuf and the tensor appended as field 7 (`raw_input_contents`, a length-
delimited field may follow the others in any order) straight from the array's buffer: one copy.
The call goes through the transformer's own channel (`channel`): public grpc APIs, kserve's service-config
retry policy (UNAVAILABLE retried with 0.1-1 s back-off), unlimited message sizes and a reconnect back-off
capped at 1 s. The request's forwardable headers (`forwarded`: request id, tracing context) go with every
call, over gRPC as metadata, over REST as headers.
"""

from __future__ import annotations

import dataclasses
import json

import grpc
import numpy as np
from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter, ModelInferRequest, ModelInferResponse
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from cloudmask import wire

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
_DTYPES = {"FP32": np.float32, "UINT16": np.uint16, "UINT8": np.uint8}

# The channel to the predictor: gRPC's default reconnect back-off grows to 120 s, so a predictor that came
# back after a minute down was used only 14-42 s later; capped at 1 s it is used within about a second.
# Message sizes unlimited as in kserve's defaults (the pixel budget bounds them).
GRPC_CHANNEL_ARGS = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                     ("grpc.max_reconnect_backoff_ms", 1000),
                     ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1))

# Request headers that travel on to the predictor: the request id and the tracing context (W3C trace
# context, Zipkin B3 in both its forms, OpenTracing, Cloud Trace), and authorization as kserve's own hop
# forwards it. Names are lower case, as HTTP/2 and gRPC metadata have them.
FORWARDED_HEADERS = ("x-request-id", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
                     "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "x-ot-span-context",
                     "x-cloud-trace-context", "authorization")


def forwarded(headers) -> dict[str, str]:
    """The forwardable headers among a request's `headers` (any mapping; names matched case-insensitively)."""
    if not headers:
        return {}
    low = {str(k).lower(): v for k, v in headers.items()}
    return {k: str(low[k]) for k in FORWARDED_HEADERS if low.get(k) is not None}


def service_config(retries: int) -> dict:
    """kserve's InferenceGRPCClient retry policy: every method, UNAVAILABLE retried, 0.1 s doubling to 1 s."""
    return {"methodConfig": [{"name": [{}], "retryPolicy": {
        "maxAttempts": retries, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]}}]}


def channel_options(retries: int | None) -> list[tuple[str, object]]:
    """GRPC_CHANNEL_ARGS with retries on, and kserve's retry policy when `retries` > 0 (as kserve's client sets them)."""
    opts = [*GRPC_CHANNEL_ARGS, ("grpc.enable_retries", 1)]
    if retries and retries > 0:
        opts.append(("grpc.service_config", json.dumps(service_config(retries))))
    return opts


def channel(target: str, use_ssl: bool = False, retries: int | None = 3) -> grpc.aio.Channel:
    """An asyncio gRPC channel to the predictor at `target` (host:port; without a port, 443 or 80 as kserve does)."""
    if ":" not in target:
        target = f"{target}:{443 if use_ssl else 80}"
    if use_ssl:
        return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=channel_options(retries))
    return grpc.aio.insecure_channel(target, options=channel_options(retries))


@dataclasses.dataclass
class Hop:
    """One predictor call: `array` under `input_name`, outputs `outputs` wanted."""

    model_name: str
    request_id: str
    input_name: str
    datatype: str  # "FP32" or "UINT16"
    array: np.ndarray
    outputs: tuple[str, ...]
    parameters: dict = dataclasses.field(default_factory=dict)  # the input tensor's: str values


def grpc_request_bytes(hop: Hop) -> bytes:
    """The serialised ModelInferRequest, the tensor copied once from the array's buffer."""
    tensor = ModelInferRequest.InferInputTensor(name=hop.input_name, datatype=hop.datatype,
                                                shape=list(hop.array.shape))
    for k, v in hop.parameters.items():
        tensor.parameters[k].CopyFrom(InferParameter(string_param=str(v)))
    head = ModelInferRequest(model_name=hop.model_name, id=hop.request_id, inputs=[tensor],
                             outputs=[ModelInferRequest.InferRequestedOutputTensor(name=o) for o in hop.outputs])
    data = np.ascontiguousarray(hop.array)
    return b"".join((head.SerializeToString(), wire.raw_contents_prefix(data.nbytes),
                     memoryview(data).cast("B")))


def grpc_response(res: ModelInferResponse) -> tuple[str, dict[str, np.ndarray]]:
    """(model_version, {output name: array viewing the received bytes})."""
    if len(res.raw_output_contents) != len(res.outputs):
        raise RuntimeError("predictor answered without raw output contents")
    arrays = {}
    for out, raw in zip(res.outputs, res.raw_output_contents):
        arrays[out.name] = np.frombuffer(raw, dtype=_DTYPES[out.datatype]).reshape(list(out.shape))
    return res.model_version, arrays


def rest_request(hop: Hop) -> InferRequest:
    """The same call as a kserve InferRequest with binary tensors (REST binary extension)."""
    inp = InferInput(name=hop.input_name, shape=list(hop.array.shape), datatype=hop.datatype,
                     parameters=dict(hop.parameters) or None)
    inp.set_data_from_numpy(np.ascontiguousarray(hop.array), binary_data=True)
    return InferRequest(model_name=hop.model_name, infer_inputs=[inp], request_id=hop.request_id,
                        parameters={"binary_data_output": True},
                        request_outputs=[RequestedOutput(o, {"binary_data": True}) for o in hop.outputs])


def rest_response(res) -> tuple[str, dict[str, np.ndarray]]:
    return res.model_version, {o.name: o.as_numpy() for o in res.outputs}
