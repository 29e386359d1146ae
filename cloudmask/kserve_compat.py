"""Everything cloudmask does to kserve that is not kserve's public API, in one place.

Written for kserve 0.21.x (KSERVE_SERIES). `check_version()` runs when a component starts its server
(`model_server`) and logs a loud warning when another kserve is installed: the patches below reach into
kserve's internals, which a kserve release may change without notice. Each patch is a named function,
idempotent, recorded in `applied()` and undone by `restore()` (for tests); tests/cloudmask/test_kserve_compat.py
exercises each in process, without a server.

Patches (what kserve 0.21 does -> what cloudmask needs):
  bind_address             binds REST to 0.0.0.0 and gRPC to [::] always -> wraps RESTServer.__init__ and
                           the gRPC server module's `aio.server` so both listen on `--bind_address` (loopback
                           for `cloudmask serve`; a pod keeps 0.0.0.0).
  grpc_message_limits      the gRPC server's 8 MB message limit -> `model_server.args` raised to 1 GiB unless
                           given on the command line (the pixel budget, not the transport, bounds a request).
  versioned_dataplane      the DataPlane swapped into the server (`server.dataplane.__class__`): V2 metadata
                           without `versions`, a non-numeric Inference-Header-Content-Length giving 500, and
                           readiness that asks the predictor for a model of the transformer's name.
  list_parameters          REST JSON parameters may be scalars only (pydantic model) -> lists allowed.
  validation_errors_as_400 FastAPI's 422 {"detail": [...]} for a body that does not fit -> V2 400 {"error"}.
  keep_binary_tensors      InferRequest/InferResponse.from_bytes turn binary tensors into Python lists (and fail
                           on BYTES that are not UTF-8, such as a GeoTIFF) and drop `model_version` -> kept raw
                           (and a large body's freed receive chunks go back to the kernel: trim_heap).
  exception_handlers       the component's own status codes (413, 504) registered on kserve's FastAPI app.
  raw_model_infer          gRPC ModelInfer deserialised by protobuf (the message's bytes, the parsed message and
                           each raw_input_contents read: three copies of a GeoTIFF) -> registered without a
                           deserializer (the transformer): the raw contents stay memoryviews into grpc's bytes
                           of the message (split_raw_contents), the rest parsed by ModelInferRequest; a large
                           message's freed receive buffers go back to the kernel (trim_heap).
Helpers on kserve types (no patch): `plain_parameters` (gRPC parameters kserve would drop silently).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
from typing import Callable

import grpc
import kserve
from kserve.protocol import dataplane as _dataplane
from kserve.protocol.grpc import server as _grpc_server
from kserve.protocol.rest import server as _rest_server

log = logging.getLogger(__name__)

KSERVE_SERIES = "0.21"  # the kserve release these patches were written against and tested with


def check_version(installed: str | None = None) -> bool:
    """Whether the installed kserve is KSERVE_SERIES.x; logs a loud warning when it is not."""
    if installed is None:
        try:
            installed = importlib.metadata.version("kserve")
        except importlib.metadata.PackageNotFoundError:
            installed = getattr(kserve, "__version__", "unknown")
    if installed == KSERVE_SERIES or installed.startswith(KSERVE_SERIES + "."):
        return True
    log.warning("!" * 100)
    log.warning("kserve %s is installed, but cloudmask.kserve_compat was written for kserve %s.x: its patches (%s) "
                "reach into kserve internals that may have changed. Run tests/cloudmask/test_kserve_compat.py and "
                "the end-to-end tests before serving with it.", installed, KSERVE_SERIES, ", ".join(PATCHES))
    log.warning("!" * 100)
    return False


# -- bookkeeping: what was patched, and how to put it back ----------------------------------------------------
_applied: dict[str, list[Callable[[], None]]] = {}  # patch name -> undo steps, in the order applied
_MISSING = object()


def _once(name: str, undo: list[Callable[[], None]]) -> None:
    _applied[name] = undo


def _set(undo: list, obj, attr: str, value) -> None:
    """setattr(obj, attr, value), remembering how to undo it (the raw attribute, not a bound method)."""
    old = vars(obj).get(attr, _MISSING) if hasattr(obj, "__dict__") else getattr(obj, attr, _MISSING)
    setattr(obj, attr, value)
    undo.append((lambda: delattr(obj, attr)) if old is _MISSING else (lambda: setattr(obj, attr, old)))


def applied() -> tuple[str, ...]:
    """The patches in effect in this process, in the order they were applied."""
    return tuple(_applied)


def restore() -> None:
    """Undo every patch (tests: a test that patches kserve leaves it as it found it)."""
    for name in reversed(list(_applied)):
        for step in reversed(_applied.pop(name)):
            step()


# -- bind_address ---------------------------------------------------------------------------------------------
def add_bind_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind_address", default="0.0.0.0",
                        help="address the REST and gRPC servers listen on (127.0.0.1 locally)")


def bind_address(address: str) -> None:
    """Make every ModelServer started after this call listen on `address` only (the first address given wins).

    kserve 0.21 always binds 0.0.0.0 (REST) and [::] (gRPC). In a pod that is right; on a laptop the
    servers should listen on loopback only, so `--bind_address 127.0.0.1` rewrites both listeners."""
    if address in ("0.0.0.0", "::", "") or "bind_address" in _applied:
        return
    undo: list = []
    rest_cls = _rest_server.RESTServer
    orig_init = rest_cls.__init__

    def __init__(self, *a, **kw):
        orig_init(self, *a, **kw)
        self.config.host = address  # the uvicorn Server holds this same config object

    _set(undo, rest_cls, "__init__", __init__)

    orig_server = _grpc_server.aio.server

    def server(*a, **kw):
        srv = orig_server(*a, **kw)
        orig_port = srv.add_insecure_port
        srv.add_insecure_port = lambda addr: orig_port(
            addr.replace("[::]", address if ":" not in address else f"[{address}]"))
        return srv

    # the gRPC server module reads `aio.server` through its own `aio` name: give it one whose server() binds
    _set(undo, _grpc_server, "aio", type("aio", (), {"server": staticmethod(server)}))
    _once("bind_address", undo)


# -- grpc_message_limits --------------------------------------------------------------------------------------
# kserve's gRPC default is 8 MB: one 512x512 6-band FP32 chip is 6.3 MB, and a 2048x2048
# 13-band GeoTIFF block 109 MB. The pixel budget, not the transport, should bound a request.
GRPC_MESSAGE_BYTES = 1024 * 1024 * 1024


def grpc_message_limits(argv=None) -> None:
    """Unless given on the command line, lift kserve's gRPC message limits (model_server.args) to
    GRPC_MESSAGE_BYTES."""
    from kserve import model_server as ms

    given = sys.argv[1:] if argv is None else argv
    undo = _applied.get("grpc_message_limits", [])
    for flag in ("grpc_max_send_message_length", "grpc_max_receive_message_length"):
        if not any(a.startswith(f"--{flag}") for a in given):
            _set(undo, ms.args, flag, GRPC_MESSAGE_BYTES)
    _once("grpc_message_limits", undo)


# -- versioned_dataplane --------------------------------------------------------------------------------------
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


def versioned_dataplane(server: kserve.ModelServer) -> None:
    """Swap VersionedDataPlane into `server` (kserve builds its DataPlane inside ModelServer.__init__ and
    offers no way to pass another; the subclass adds behaviour and no state, so changing the class is safe)."""
    server.dataplane.__class__ = VersionedDataPlane
    _applied.setdefault("versioned_dataplane", [])


# -- validation_errors_as_400 ---------------------------------------------------------------------------------
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


def _exception_handler(undo: list, exc_type, handler) -> None:
    from kserve import model_server as ms

    handlers = ms.app.exception_handlers
    old = handlers.get(exc_type, _MISSING)
    ms.app.add_exception_handler(exc_type, handler)
    undo.append((lambda: handlers.pop(exc_type, None)) if old is _MISSING
                else (lambda: handlers.__setitem__(exc_type, old)))


def validation_errors_as_400() -> None:
    """FastAPI's 422 for a JSON body that does not fit kserve's V2 model -> the V2 400 {"error": ...}."""
    from fastapi.exceptions import RequestValidationError

    if "validation_errors_as_400" in _applied:
        return
    undo: list = []
    _exception_handler(undo, RequestValidationError, _validation_error)
    _once("validation_errors_as_400", undo)


def exception_handlers(handlers: dict) -> None:
    """Register a component's own {exception type: async handler} on kserve's FastAPI app (REST status codes
    kserve does not know, e.g. 413 and 504); kserve exposes the app only as model_server.app."""
    undo = _applied.get("exception_handlers", [])
    for exc_type, handler in handlers.items():
        _exception_handler(undo, exc_type, handler)
    _once("exception_handlers", undo)


# -- list_parameters ------------------------------------------------------------------------------------------
def list_parameters() -> None:
    """Let REST JSON parameters be lists (`"window": [0, 0, 512, 512]`, `"bands": ["B02", ...]`), the form
    this service documents; kserve 0.21's pydantic model takes scalars only and answers 422."""
    from typing import Dict, List, Optional, Union

    from pydantic import StrictBool, StrictFloat, StrictInt
    from pydantic.fields import FieldInfo
    from kserve.protocol.rest import v2_datamodels as dm

    if "list_parameters" in _applied:
        return
    undo: list = []
    scalar = Union[StrictFloat, StrictInt, StrictBool, str]
    field = FieldInfo.from_annotated_attribute(Optional[Dict[str, Union[scalar, List[scalar]]]], None)
    models = (dm.RequestInput, dm.RequestOutput, dm.InferenceRequest)  # nested models first
    for cls in models:
        old = cls.__pydantic_fields__["parameters"]
        cls.__pydantic_fields__["parameters"] = field
        cls.model_rebuild(force=True)
        undo.append(lambda cls=cls, old=old: (cls.__pydantic_fields__.__setitem__("parameters", old),
                                              cls.model_rebuild(force=True)))
    _once("list_parameters", undo)


# -- start-up -------------------------------------------------------------------------------------------------
def model_server(args, handlers: dict | None = None, **kwargs) -> kserve.ModelServer:
    """kserve's ModelServer with every patch a cloudmask component needs; `handlers`: the component's own
    exception handlers (exception_handlers)."""
    check_version()
    bind_address(args.bind_address)
    keep_binary_tensors()
    list_parameters()  # before the server registers its routes, which read the model's schema
    validation_errors_as_400()
    if handlers:
        exception_handlers(handlers)
    server = kserve.ModelServer(**kwargs)
    versioned_dataplane(server)
    return server


# -- keep_binary_tensors --------------------------------------------------------------------------------------
def _from_bytes_keep_raw(cls, req_bytes: bytes, json_length: int, model_name: str):
    """InferRequest.from_bytes that keeps binary inputs as the bytes they arrived as.

    kserve 0.21 turns every binary input into a Python list (set_data_from_numpy(...,
    binary_data=False)): slow for tensors, and it fails outright for BYTES that are not UTF-8,
    such as a GeoTIFF. as_numpy() reads _raw_data directly, so keeping it is all that is needed.
    """
    import orjson
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferInput, RequestedOutput

    trim_heap(len(req_bytes))  # uvicorn's chunks of the body, freed when they were joined
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
            # a view, not a slice: the tensor stays where it arrived (raw_span says where)
            inp._raw_data = memoryview(req_bytes)[start:end]
            inp._raw_span = (req_bytes, start, size)
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

    if "keep_binary_tensors" in _applied:
        return
    undo: list = []
    _set(undo, InferRequest, "from_bytes", classmethod(_from_bytes_keep_raw))
    _set(undo, InferResponse, "from_bytes", classmethod(_response_from_bytes_keep_raw))
    _once("keep_binary_tensors", undo)


PATCHES = ("bind_address", "grpc_message_limits", "versioned_dataplane", "list_parameters",
           "validation_errors_as_400", "keep_binary_tensors", "exception_handlers", "raw_model_infer")


# -- helpers on kserve types ----------------------------------------------------------------------------------
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


# -- raw tensors ------------------------------------------------------------------------------------------------
def raw_span(inp) -> tuple[bytes, int, int] | None:
    """(buffer, offset, size) of an input's tensor in its wire form, when kserve kept it: REST binary
    (keep_binary_tensors: a view into the request body), gRPC through raw_model_infer (a view into the
    message's bytes) or kserve's own gRPC path (InferRequest.from_grpc's copy of raw_input_contents); None for
    JSON data. kserve keeps it as the private InferInput._raw_data."""
    span = getattr(inp, "_raw_span", None)
    if span is not None:
        return span
    raw = getattr(inp, "_raw_data", None)
    if isinstance(raw, bytes):
        return raw, 0, len(raw)
    if (isinstance(raw, memoryview) and isinstance(raw.obj, bytes) and raw.ndim == 1 and raw.itemsize == 1
            and raw.c_contiguous):
        return raw.obj, _view_offset(raw), raw.nbytes
    return None


def release_inputs(request) -> None:
    """Drop kserve's copies of a request's input tensors (InferInput._raw_data / _data, and the body
    view) once the model has what it needs from them: a full-budget GeoTIFF is hundreds of MB, and
    kserve keeps the InferRequest until the response is sent. (A tensor that lies in the bytes of a raw
    ModelInfer call stays in memory until the call ends: grpc holds those bytes. Giving their pages back with
    madvise was measured, 46 MB less at the full budget, and not kept: it zeroes memory behind an immutable bytes.)"""
    for inp in request.inputs or ():
        inp._raw_data = None
        inp._data = None
        if hasattr(inp, "_raw_span"):
            inp._raw_span = None


# -- body_limit -----------------------------------------------------------------------------------------------
def body_limit(max_bytes: int) -> None:
    """A request body limit in front of kserve's REST app (cloudmask.bodylimit.BodyLimit): a Content-Length over
    max_bytes gets 413 before any byte of the body is read; kserve (uvicorn + FastAPI) would read any body whole
    into memory first. kserve exposes the app only as model_server.app; the middleware goes on before it starts."""
    from kserve import model_server as ms

    from cloudmask.bodylimit import BodyLimit

    if "body_limit" in _applied:
        return
    ms.app.add_middleware(BodyLimit, max_bytes=max_bytes)
    entry = ms.app.user_middleware[0]
    _once("body_limit", [lambda: ms.app.user_middleware.remove(entry)])


# -- raw_model_infer ------------------------------------------------------------------------------------------
# kserve registers ModelInfer with ModelInferRequest.FromString as its deserializer: grpc hands the
# deserializer the message's bytes (kept alive by grpc until the call ends), protobuf copies every
# raw_input_contents element into the parsed message, and each read of request.raw_input_contents[i] makes
# one more Python bytes copy (kserve's InferInput._raw_data). For a full-budget GeoTIFF that is three copies
# of a 416 MB body at once. raw_model_infer registers ModelInfer without a deserializer: the handler gets
# the wire bytes, split_raw_contents walks their top level (protobuf's wire format), the raw contents
# become memoryviews into those bytes, and everything else (a few hundred bytes) is parsed by the real
# ModelInferRequest. kserve's own ModelInfer then runs on that (WireInferRequest).
SERVICE = "inference.GRPCInferenceService"
MODEL_INFER_METHOD = "ModelInfer"
from cloudmask.wire import RAW_INPUT_CONTENTS_FIELD as _RAW_INPUT_CONTENTS_FIELD  # noqa: E402 (beside its users)
# fields walked, groups' included: a real request has a few dozen (one per input, output, parameter); the walk is
# Python (~1 us a field), so a hostile message of 1,000 fields costs ~1 ms, not the 80-320 ms 100,000 cost
_MAX_FIELDS = 1_000
_MAX_GROUP_DEPTH = 100  # protobuf's (upb's) default nesting limit


class WireFormatError(ValueError):
    """Bytes that are not a protobuf message at their top level (says where and why)."""


def _varint(buf, pos: int, end: int, what: str, max_bytes: int = 10) -> tuple[int, int]:
    start, value, shift = pos, 0, 0
    while True:
        if pos >= end:
            raise WireFormatError(f"{what} at byte {start} is cut off by the end of the message")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & 0xFFFF_FFFF_FFFF_FFFF, pos
        shift += 7
        if pos - start >= max_bytes:
            raise WireFormatError(f"{what} at byte {start} is longer than {max_bytes} bytes")


def _length_delimited(buf, pos: int, end: int, tag_at: int, field: int) -> tuple[int, int]:
    """(start, size) of the value of a length-delimited field whose tag ended at `pos`."""
    size, start = _varint(buf, pos, end, f"length of field {field}")
    if size >= 2**31 - 1 or start + size > end:  # protobuf's own limit: under 2 GiB
        raise WireFormatError(f"field {field} at byte {tag_at}: its length ({size} bytes) runs past the end "
                              f"of the message ({end - start} bytes left)")
    return start, size


def _count(walked: list[int]) -> None:
    walked[0] += 1
    if walked[0] > _MAX_FIELDS:  # the walk is Python: a message of a million empty fields is refused, not walked
        raise WireFormatError(f"more than {_MAX_FIELDS} fields")


def _skip_field(buf, pos: int, end: int, tag_at: int, field: int, wire_type: int, walked: list[int],
                depth: int = 0) -> int:
    """The position after the value of a field whose tag ended at `pos` (walked: fields so far, groups' too)."""
    if wire_type == 0:
        return _varint(buf, pos, end, "varint")[1]
    if wire_type in (1, 5):
        size = 8 if wire_type == 1 else 4
        if pos + size > end:
            raise WireFormatError(f"field {field} at byte {tag_at}: its {size}-byte value runs past the end of "
                                  f"the message")
        return pos + size
    if wire_type == 2:
        start, size = _length_delimited(buf, pos, end, tag_at, field)
        return start + size
    if wire_type == 3:  # a group (proto2): its fields, up to the end-group tag of the same number
        if depth >= _MAX_GROUP_DEPTH:
            raise WireFormatError(f"groups nested deeper than {_MAX_GROUP_DEPTH} at byte {tag_at}")
        while True:
            inner_at = pos
            inner_field, inner_type, pos = _tag(buf, pos, end)
            _count(walked)
            if inner_type == 4:
                if inner_field != field:
                    raise WireFormatError(f"group {field} at byte {tag_at} is closed as group {inner_field} "
                                          f"at byte {inner_at}")
                return pos
            pos = _skip_field(buf, pos, end, inner_at, inner_field, inner_type, walked, depth + 1)
    if wire_type == 4:
        raise WireFormatError(f"end of group {field} at byte {tag_at} without its start")
    raise WireFormatError(f"field {field} at byte {tag_at} has wire type {wire_type}, which protobuf does not have")


def _tag(buf, pos: int, end: int) -> tuple[int, int, int]:
    tag_at = pos
    tag, pos = _varint(buf, pos, end, "field tag", max_bytes=5)
    if tag > 0xFFFF_FFFF or tag >> 3 == 0:
        raise WireFormatError(f"field tag at byte {tag_at} is {tag}: field number {tag >> 3} is outside "
                              f"protobuf's 1 to {2**29 - 1}")
    return tag >> 3, tag & 7, pos


def split_raw_contents(wire, field: int = _RAW_INPUT_CONTENTS_FIELD) -> tuple[bytes, list[tuple[int, int]]]:
    """Split a protobuf message's wire bytes at their top level: (every field but the length-delimited
    `field` entries, in their order, as bytes for the real parser; [(offset, size)] of each `field` entry's
    value in `wire`, in order). Only framing is checked here (tags, lengths, groups): WireFormatError says
    what is wrong and where; the rest is the real parser's to judge."""
    buf = memoryview(wire)
    end = len(buf)
    pos, spans, keep, kept_from, walked = 0, [], [], 0, [0]
    while pos < end:
        _count(walked)
        tag_at = pos
        number, wire_type, pos = _tag(buf, pos, end)
        if number == field and wire_type == 2:
            start, size = _length_delimited(buf, pos, end, tag_at, field)
            keep.append(buf[kept_from:tag_at])
            spans.append((start, size))
            pos = kept_from = start + size
        else:
            pos = _skip_field(buf, pos, end, tag_at, number, wire_type, walked)
    if not spans:  # nothing to cut out (a GeoTIFF in contents.bytes_contents, say): the bytes as they are, no copy
        return bytes(wire) if not isinstance(wire, bytes) else wire, spans
    keep.append(buf[kept_from:end])
    return b"".join(keep), spans


class WireInferRequest:
    """A ModelInferRequest parsed from its wire bytes but for raw_input_contents, which are memoryviews into
    those bytes (raw_span finds the bytes and the offset again): what kserve's ModelInfer and
    InferRequest.from_grpc read of a request, every other attribute the parsed message's."""

    def __init__(self, message, raw_input_contents: list[memoryview]):
        self._message = message
        self.raw_input_contents = raw_input_contents

    def __getattr__(self, name):
        return getattr(self._message, name)

    @classmethod
    def parse(cls, wire: bytes) -> WireInferRequest:
        """kserve's InvalidInput, naming the problem, for bytes that are not a ModelInferRequest."""
        from google.protobuf.message import DecodeError
        from kserve.errors import InvalidInput
        from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferRequest

        try:
            rest, spans = split_raw_contents(wire)
            message = ModelInferRequest.FromString(rest)
        except (WireFormatError, DecodeError) as e:
            raise InvalidInput(f"the request is not a valid inference.ModelInferRequest: {e}") from None
        view = memoryview(wire)
        return cls(message, [view[start:start + size] for start, size in spans])


# A request body this large has just left its receive buffers free on the heap (grpc's slices of the message,
# uvicorn's chunks of a REST body): as large again as the body, and resident, since the serving processes keep
# up to 256 MiB of free heap untrimmed (cloudmask.alloc). Freed at once, they do not add to the request's peak.
TRIM_AFTER_BYTES = 32 * 1024 * 1024


def trim_heap(received: int) -> bool:
    """glibc's malloc_trim(0) after receiving a body of `received` bytes when that is TRIM_AFTER_BYTES or more
    (small requests keep their warm pages); False where there is nothing to do or no glibc."""
    global _malloc_trim
    if received < TRIM_AFTER_BYTES:
        return False
    if _malloc_trim is None:
        import ctypes
        import ctypes.util

        try:
            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = False
    if not _malloc_trim:
        return False
    _malloc_trim(0)
    return True


_malloc_trim = None

def _view_offset(view: memoryview) -> int:
    """Where a 1-D byte view starts in the bytes it views (no copy: the two buffers' addresses)."""
    import numpy as np

    if view.nbytes == 0:
        return 0
    return (np.frombuffer(view, np.uint8).__array_interface__["data"][0]
            - np.frombuffer(view.obj, np.uint8).__array_interface__["data"][0])


class _RawModelInferServer:
    """The gRPC server as kserve's add_GRPCInferenceServiceServicer_to_server sees it: every registration
    passes through, with ModelInfer's handler swapped for `handler` (registered and generic alike)."""

    def __init__(self, server, handler):
        self._server, self._handler = server, handler

    def add_registered_method_handlers(self, service_name, method_handlers):
        if service_name == SERVICE and MODEL_INFER_METHOD in method_handlers:
            method_handlers = {**method_handlers, MODEL_INFER_METHOD: self._handler}
        return self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_generic_rpc_handlers(self, handlers):
        return self._server.add_generic_rpc_handlers(tuple(_SwapModelInfer(h, self._handler) for h in handlers))

    def __getattr__(self, name):
        return getattr(self._server, name)


class _SwapModelInfer(grpc.GenericRpcHandler):
    """A generic handler that answers ModelInfer with `handler` and everything else as `inner` does."""

    def __init__(self, inner, handler):
        self._inner, self._handler = inner, handler

    def service(self, handler_call_details):
        found = self._inner.service(handler_call_details)
        if found is not None and handler_call_details.method == f"/{SERVICE}/{MODEL_INFER_METHOD}":
            return self._handler
        return found


def raw_handler(servicer):
    """ModelInfer for kserve's `servicer` without a deserializer: the wire bytes -> WireInferRequest ->
    kserve's own servicer.ModelInfer (validation, InferRequest.from_grpc, the data plane, the response)."""
    from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferResponse

    async def model_infer(wire: bytes, context):
        import asyncio

        def prepare():
            trim_heap(len(wire))  # what grpc freed receiving it (its slices of the message) goes back now
            return WireInferRequest.parse(wire)

        # the walk and malloc_trim (~30 ms at the full budget) off the event loop: health checks and other calls go on
        request = await asyncio.get_running_loop().run_in_executor(None, prepare)
        return await servicer.ModelInfer(request, context)

    return grpc.unary_unary_rpc_method_handler(model_infer, request_deserializer=None,
                                               response_serializer=ModelInferResponse.SerializeToString)


def raw_model_infer() -> None:
    """Every gRPC server kserve starts after this call registers ModelInfer without protobuf's deserializer
    (raw_handler): the raw input contents stay where they arrived, in grpc's bytes of the message."""
    if "raw_model_infer" in _applied:
        return
    undo: list = []
    module = _grpc_server.grpc_predict_v2_pb2_grpc
    original = module.add_GRPCInferenceServiceServicer_to_server

    def add_servicer(servicer, server):
        return original(servicer, _RawModelInferServer(server, raw_handler(servicer)))

    # the gRPC server module reads the registration through its own name for the generated module: give it
    # one whose add_GRPCInferenceServiceServicer_to_server swaps the handler, all else the generated module's
    shim = type("grpc_predict_v2_pb2_grpc", (), {"__getattr__": lambda self, name: getattr(module, name),
                                                 "add_GRPCInferenceServiceServicer_to_server":
                                                     staticmethod(add_servicer)})()
    _set(undo, _grpc_server, "grpc_predict_v2_pb2_grpc", shim)
    _once("raw_model_infer", undo)
