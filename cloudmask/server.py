"""What both components add to kserve's ModelServer: a bind address and versions in V2 metadata.

kserve 0.21 always binds 0.0.0.0 (REST) and [::] (gRPC). In a pod that is right; on a laptop the
servers should listen on loopback only, so `--bind_address 127.0.0.1` rewrites both listeners.
"""

from __future__ import annotations

import argparse

import kserve
from kserve.protocol import dataplane as _dataplane
from kserve.protocol.grpc import server as _grpc_server
from kserve.protocol.rest import server as _rest_server

from .alloc import tune_malloc  # noqa: F401  (both components call it first thing)


def add_bind_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind_address", default="0.0.0.0",
                        help="address the REST and gRPC servers listen on (127.0.0.1 locally)")


def bind(address: str) -> None:
    """Make every ModelServer started after this call listen on `address` only."""
    if address in ("0.0.0.0", "::", ""):
        return
    rest_cls = _rest_server.RESTServer

    if not getattr(rest_cls, "_cloudmask_bound", False):
        orig_init = rest_cls.__init__

        def __init__(self, *a, **kw):
            orig_init(self, *a, **kw)
            self.config.host = address  # the uvicorn Server holds this same config object

        rest_cls.__init__ = __init__
        rest_cls._cloudmask_bound = True

    aio = _grpc_server.aio
    if not getattr(aio, "_cloudmask_bound", False):
        orig_server = aio.server

        def server(*a, **kw):
            srv = orig_server(*a, **kw)
            orig_port = srv.add_insecure_port
            srv.add_insecure_port = lambda addr: orig_port(
                addr.replace("[::]", address if ":" not in address else f"[{address}]"))
            return srv

        _grpc_server.aio = type("aio", (), {"server": staticmethod(server), "_cloudmask_bound": True})


# kserve's gRPC default is 8 MB: one 512x512 6-band FP32 chip is 6.3 MB, and a 2048x2048
# 13-band GeoTIFF block 109 MB. The pixel budget, not the transport, should bound a request.
GRPC_MESSAGE_BYTES = 1024 * 1024 * 1024


def raise_grpc_message_limits(argv=None) -> None:
    """Unless given on the command line, lift kserve's gRPC message limits to GRPC_MESSAGE_BYTES."""
    import sys

    from kserve import model_server as ms

    given = sys.argv[1:] if argv is None else argv
    for flag in ("grpc_max_send_message_length", "grpc_max_receive_message_length"):
        if not any(a.startswith(f"--{flag}") for a in given):
            setattr(ms.args, flag, GRPC_MESSAGE_BYTES)


class VersionedDataPlane(_dataplane.DataPlane):
    """V2 model metadata with `versions` (kserve 0.21 leaves it out) from the model's `version`;
    an Inference-Header-Content-Length that is not a length is a 400 (kserve: int() -> 500)."""

    def decode_inference_request(self, body, headers, model_name):
        from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER as HEADER
        from kserve.errors import InvalidInput

        if isinstance(body, bytes) and headers.get(HEADER) is not None:
            value = headers[HEADER]
            n = int(value) if str(value).strip().isdigit() else -1
            if not 0 < n <= len(body):
                raise InvalidInput(f"header Inference-Header-Content-Length must be the length in bytes of the "
                                   f"request's JSON part (1..{len(body)}), got {value!r}")
        return super().decode_inference_request(body, headers, model_name)

    async def ready(self) -> bool:
        """Server readiness (the pods' readiness probe) also needs every model's dependencies: a
        transformer whose predictor is down or frozen is not ready (kserve's own check asks the
        predictor for a model of the transformer's name, which it does not serve)."""
        return await super().ready() and await self._dependencies_ready()

    async def model_ready(self, model_name: str, disable_predictor_health_check: bool = False) -> bool:
        ready = await super().model_ready(model_name, disable_predictor_health_check)
        if not ready or disable_predictor_health_check:  # kserve's infer path skips the check: keep it cheap
            return ready
        return await self._dependencies_ready(model_name)

    async def _dependencies_ready(self, model_name: str | None = None) -> bool:
        models = self.model_registry.get_models()
        for name, model in models.items():
            check = getattr(model, "predictor_ready", None)
            if (model_name is None or name == model_name) and check is not None and not await check():
                return False
        return True

    async def model_metadata(self, model_name: str):
        meta = await super().model_metadata(model_name)
        version = getattr(self.get_model_from_registry(model_name), "version", None)
        if version is not None:
            meta["versions"] = [str(version)]
        return meta


def _field_path(loc) -> str:
    # ("body", "InferenceRequest", "inputs", 0, "datatype") -> "inputs.0.datatype"
    return ".".join(str(p) for p in loc if p not in ("body", "InferenceRequest")) or "body"


async def _validation_error(_request, exc):
    """FastAPI's 422 {"detail": [...]} for a JSON body kserve's model refuses -> the V2 400 {"error": ...}."""
    from fastapi.responses import JSONResponse

    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        msg = "request body is not valid JSON: " + "; ".join(str(e.get("ctx", {}).get("error", e["msg"]))
                                                             for e in errors)
    else:
        # the route takes InferenceRequest or bytes: the bytes alternative's complaint says nothing useful
        errors = [e for e in errors if tuple(e["loc"][:2]) != ("body", "bytes")] or errors
        msg = "; ".join(f"{_field_path(e['loc'])}: {e['msg']}" for e in errors[:5])
        msg = f"request does not fit the V2 inference request: {msg}"
    return JSONResponse(status_code=400, content={"error": msg})


def allow_list_parameters() -> None:
    """Let REST JSON parameters be lists (`"window": [0, 0, 512, 512]`, `"bands": ["B02", ...]`), the form
    this service documents; kserve 0.21's pydantic model takes scalars only and answers 422."""
    from typing import Dict, List, Optional, Union

    from pydantic import StrictBool, StrictFloat, StrictInt
    from pydantic.fields import FieldInfo
    from kserve.protocol.rest import v2_datamodels as dm

    scalar = Union[StrictFloat, StrictInt, StrictBool, str]
    field = FieldInfo.from_annotated_attribute(Optional[Dict[str, Union[scalar, List[scalar]]]], None)
    for cls in (dm.RequestInput, dm.RequestOutput, dm.InferenceRequest):  # nested models first
        cls.__pydantic_fields__["parameters"] = field
        cls.model_rebuild(force=True)


def model_server(args, **kwargs) -> kserve.ModelServer:
    from fastapi.exceptions import RequestValidationError
    from kserve import model_server as ms

    bind(args.bind_address)
    keep_binary_tensors()
    allow_list_parameters()  # before the server registers its routes, which read the model's schema
    ms.app.add_exception_handler(RequestValidationError, _validation_error)
    server = kserve.ModelServer(**kwargs)
    server.dataplane.__class__ = VersionedDataPlane
    return server


def _from_bytes_keep_raw(cls, req_bytes: bytes, json_length: int, model_name: str):
    """InferRequest.from_bytes that keeps binary inputs as the bytes they arrived as.

    kserve 0.21 turns every binary input into a Python list (set_data_from_numpy(...,
    binary_data=False)): slow for tensors, and it fails outright for BYTES that are not UTF-8,
    such as a GeoTIFF. as_numpy() reads _raw_data directly, so keeping it is all that is needed.
    """
    import orjson
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferInput, RequestedOutput

    try:
        head = orjson.loads(req_bytes[:json_length])
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the request's JSON part (its first {json_length} bytes, per "
                           f"Inference-Header-Content-Length) is not valid JSON: {e}") from None
    if not isinstance(head, dict) or not isinstance(head.get("inputs"), list):
        raise InvalidInput('the request\'s JSON part must be an object whose "inputs" is a list')
    if not isinstance(head.get("parameters") or {}, dict):
        raise InvalidInput('request "parameters" must be an object')
    inputs, start = [], json_length
    for item in head["inputs"]:
        params = _tensor_head(item, "input")
        inp = InferInput(name=item["name"], shape=item["shape"], datatype=item["datatype"], parameters=params)
        if item.get("data") is not None:
            inp.data = item["data"]
        elif params and params.get("binary_data_size") is not None:
            size = params["binary_data_size"]
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InvalidInput(f"input '{inp.name}': binary_data_size must be a byte count, got {size!r}")
            end = start + size
            if end > len(req_bytes):
                raise InvalidInput(f"input '{inp.name}': binary_data_size runs past the end of the body")
            inp._raw_data = req_bytes[start:end]
            start = end
        else:
            raise InvalidInput(f"'data' field is missing for input '{inp.name}' for model '{model_name}'")
        inputs.append(inp)
    outputs = None
    if head.get("outputs") is not None:
        if not isinstance(head["outputs"], list):
            raise InvalidInput('request "outputs" must be a list')
        outputs = [RequestedOutput(name=o["name"], parameters=_tensor_head(o, "output", shape=False))
                   for o in head["outputs"]]
    return cls(model_name=model_name, request_id=head.get("id"), parameters=head.get("parameters"),
               infer_inputs=inputs, request_outputs=outputs)


def _tensor_head(item, what: str, shape: bool = True) -> dict | None:
    """Check one input's (or requested output's) JSON head; its parameters, or None."""
    from kserve.errors import InvalidInput

    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise InvalidInput(f"malformed {what} {str(item)[:200]}: each {what} is an object with a \"name\"")
    if shape and (not isinstance(item.get("datatype"), str) or not isinstance(item.get("shape"), list)
                  or not all(isinstance(d, int) and not isinstance(d, bool) for d in item["shape"])):
        raise InvalidInput(f"malformed input {item['name']!r}: needs \"datatype\" (text) and \"shape\" "
                           "(a list of integers)")
    params = item.get("parameters") or None
    if params is not None and not isinstance(params, dict):
        raise InvalidInput(f"{what} {item['name']!r}: \"parameters\" must be an object")
    return params


def _response_from_bytes_keep_raw(cls, res_bytes: bytes, json_length: int):
    """InferResponse.from_bytes that keeps binary outputs as bytes, and the model version.

    The transformer's REST hop reads the predictor's answer with this: kserve 0.21 would turn
    3 MB of probabilities per chip into a Python list and drop `model_version`.
    """
    import orjson
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferOutput

    try:
        head = orjson.loads(res_bytes[:json_length])
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"Unrecognized response format: {e}") from None
    outputs, start = [], json_length
    for item in head["outputs"]:
        params = item.get("parameters") or None
        out = InferOutput(name=item["name"], shape=item["shape"], datatype=item["datatype"], parameters=params)
        if params and params.get("binary_data_size") is not None:
            end = start + int(params["binary_data_size"])
            out._raw_data = res_bytes[start:end]
            start = end
        elif item.get("data") is not None:
            out.data = item["data"]
        else:
            raise InvalidInput(f"'data' field is missing for output '{out.name}'")
        outputs.append(out)
    return cls(model_name=head["model_name"], model_version=head.get("model_version"),
               response_id=head.get("id"), parameters=head.get("parameters"), infer_outputs=outputs)


def keep_binary_tensors() -> None:
    """Install both from_bytes replacements (see above); idempotent."""
    from kserve.protocol.infer_type import InferRequest, InferResponse

    InferRequest.from_bytes = classmethod(_from_bytes_keep_raw)
    InferResponse.from_bytes = classmethod(_response_from_bytes_keep_raw)


def plain_parameters(parameters) -> dict:
    """V2 parameters as plain values, from REST (a dict) or gRPC (InferParameter messages).

    kserve's proto knows bool, int64 and string only, so a float a client sent as double_param
    arrives with no value set and kserve's `to_http_parameters` would drop it silently: a
    ValueError naming the parameter instead (send numbers as strings or integers).
    """
    from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter
    from kserve.protocol.infer_type import to_http_parameters

    for key, val in (parameters or {}).items():
        if isinstance(val, InferParameter) and val.WhichOneof("parameter_choice") is None:
            raise ValueError(f"parameter {key!r} has a type this server cannot read over gRPC; "
                             "send numbers as strings (\"-1000\") or integers")
    return to_http_parameters(parameters) if parameters else {}
