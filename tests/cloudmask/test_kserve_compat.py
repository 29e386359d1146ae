"""cloudmask.kserve_compat, in process: each patch does what it says against the installed kserve, and
restore() leaves kserve as it was (every test here undoes its patches: see the `compat` fixture)."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse

from cloudmask import kserve_compat as compat_mod


def _body(inputs, blobs):
    head = json.dumps({"id": "x", "inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    return head + b"".join(blobs), len(head)


@pytest.fixture(autouse=True)
def compat():
    """Each test starts with kserve unpatched and leaves it so, whatever it applied."""
    compat_mod.restore()
    yield compat_mod
    compat_mod.restore()


@pytest.fixture
def binary(compat):
    compat.keep_binary_tensors()


def test_binary_bytes_input_stays_bytes(binary):
    """A GeoTIFF is not UTF-8: kserve 0.21 itself fails on it (it turns binary inputs into str lists)."""
    tif = b"II*\x00" + bytes(range(256)) * 4
    blob = len(tif).to_bytes(4, "little") + tif
    body, n = _body([{"name": "geotiff", "shape": [1], "datatype": "BYTES",
                      "parameters": {"binary_data_size": len(blob)}}], [blob])
    req = InferRequest.from_bytes(body, n, "cloudmask")
    assert req.inputs[0].as_numpy()[0] == tif
    assert req.id == "x" and req.use_binary_outputs


def test_binary_fp32_input_is_read_without_a_list(binary):
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
def test_malformed_binary_requests_are_invalid_input(binary, inputs, blobs, words):
    body, n = _body(inputs, blobs)
    with pytest.raises(InvalidInput, match=words):
        InferRequest.from_bytes(body, n, "m")


def test_response_keeps_raw_outputs_and_model_version(binary):
    p = np.random.default_rng(0).random((1, 4, 4, 3), dtype=np.float32)
    head = json.dumps({"id": "r", "model_name": "cloudmask-6b", "model_version": "7", "outputs": [
        {"name": "probabilities", "shape": [1, 4, 4, 3], "datatype": "FP32",
         "parameters": {"binary_data_size": p.nbytes}}]}).encode()
    res = InferResponse.from_bytes(head + p.tobytes(), len(head))
    assert res.model_version == "7"
    np.testing.assert_array_equal(res.outputs[0].as_numpy(), p)


def test_binary_patch_is_undone(compat):
    before = InferRequest.__dict__["from_bytes"], InferResponse.__dict__["from_bytes"]
    compat.keep_binary_tensors()
    assert InferRequest.__dict__["from_bytes"] is not before[0]
    assert "keep_binary_tensors" in compat.applied()
    compat.restore()
    assert (InferRequest.__dict__["from_bytes"], InferResponse.__dict__["from_bytes"]) == before
    assert compat.applied() == ()


def test_bind_rewrites_the_rest_listener(compat):
    from kserve.protocol.rest.server import RESTServer

    compat.bind_address("127.0.0.1")
    rs = RESTServer("kserve.model_server:app", None, None, http_port=0)
    assert rs.config.host == "127.0.0.1"
    compat.restore()
    assert RESTServer("kserve.model_server:app", None, None, http_port=0).config.host != "127.0.0.1"


@pytest.mark.parametrize("address,expected", [("127.0.0.1", "127.0.0.1:8081"), ("::1", "[::1]:8081")])
def test_bind_rewrites_the_grpc_listener(compat, address, expected):
    """kserve's gRPC server calls aio.server(...).add_insecure_port("[::]:PORT"): the address is rewritten."""
    from kserve.protocol.grpc import server as grpc_server

    real_aio = grpc_server.aio
    compat.bind_address(address)
    assert grpc_server.aio is not real_aio

    async def bound_port():
        srv = grpc_server.aio.server()
        try:
            return srv.add_insecure_port("[::]:0")  # port 0: any free one, on the rewritten address
        finally:
            await srv.stop(None)

    assert asyncio.run(bound_port()) > 0
    seen = []
    compat.restore()
    assert grpc_server.aio is real_aio

    class FakeServer:
        def add_insecure_port(self, addr):
            seen.append(addr)
            return 1

    grpc_server.aio = type("aio", (), {"server": staticmethod(lambda *a, **kw: FakeServer())})
    try:
        compat.bind_address(address)
        grpc_server.aio.server().add_insecure_port("[::]:8081")
    finally:
        compat.restore()
        grpc_server.aio = real_aio
    assert seen == [expected]


def test_bind_leaves_the_wildcard_alone(compat):
    compat.bind_address("0.0.0.0")
    assert "bind_address" not in compat.applied()


def test_grpc_limits_are_raised_unless_given(compat):
    from kserve import model_server as ms

    old = ms.args.grpc_max_send_message_length, ms.args.grpc_max_receive_message_length
    ms.args.grpc_max_send_message_length = ms.args.grpc_max_receive_message_length = 1000
    try:
        compat.grpc_message_limits(["--grpc_max_send_message_length=1000"])
        assert ms.args.grpc_max_receive_message_length == compat.GRPC_MESSAGE_BYTES
        assert ms.args.grpc_max_send_message_length == 1000  # given on the command line: left alone
        compat.restore()
        assert ms.args.grpc_max_receive_message_length == 1000
    finally:
        ms.args.grpc_max_send_message_length, ms.args.grpc_max_receive_message_length = old


def test_version_check_is_loud_for_another_kserve(compat, caplog):
    assert compat.check_version()  # the installed one: what the patches were written for
    assert compat.check_version("0.21.3")
    with caplog.at_level(logging.WARNING, logger="cloudmask.kserve_compat"):
        assert not compat.check_version("0.22.0")
    text = caplog.text
    assert "0.22.0" in text and "0.21.x" in text and "bind_address" in text


def test_list_parameters_lets_json_parameters_be_lists(compat):
    from kserve.protocol.rest.v2_datamodels import InferenceRequest
    from pydantic import ValidationError

    body = {"inputs": [{"name": "geotiff", "shape": [1], "datatype": "BYTES", "data": ["x"]}],
            "parameters": {"window": [0, 0, 512, 512], "bands": ["B02", "B03"]}}
    with pytest.raises(ValidationError):
        InferenceRequest.model_validate(body)  # kserve 0.21: scalars only
    compat.list_parameters()
    assert InferenceRequest.model_validate(body).parameters["window"] == [0, 0, 512, 512]
    compat.restore()
    with pytest.raises(ValidationError):
        InferenceRequest.model_validate(body)


def test_validation_errors_become_v2_400(compat):
    from fastapi.exceptions import RequestValidationError
    from kserve import model_server as ms

    before = dict(ms.app.exception_handlers)
    compat.validation_errors_as_400()
    handler = ms.app.exception_handlers[RequestValidationError]
    exc = RequestValidationError([{"type": "missing", "loc": ("body", "InferenceRequest", "inputs", 0, "datatype"),
                                   "msg": "Field required"}])
    res = asyncio.run(handler(None, exc))
    assert res.status_code == 400
    assert json.loads(res.body) == {"error": "request does not fit the V2 inference request: "
                                             "inputs.0.datatype: Field required"}
    compat.restore()
    assert ms.app.exception_handlers == before


def test_exception_handlers_are_registered_and_undone(compat):
    from kserve import model_server as ms

    class Boom(Exception):
        pass

    async def handler(_request, _exc):
        return None

    compat.exception_handlers({Boom: handler})
    assert ms.app.exception_handlers[Boom] is handler
    compat.restore()
    assert Boom not in ms.app.exception_handlers


class _Model:
    def __init__(self, name, ready=True, dependency=True, version=None):
        self.name, self.ready, self._dependency = name, ready, dependency
        if version is not None:
            self.version = version

    async def predictor_ready(self):
        return self._dependency

    async def healthy(self):
        return self.ready


def _dataplane(*models):
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane

    repo = ModelRepository()
    for m in models:
        repo.update(m)
    dp = DataPlane(model_registry=repo)

    class Server:  # what versioned_dataplane needs of a ModelServer: its dataplane
        dataplane = dp

    compat_mod.versioned_dataplane(Server)
    return dp


def test_versioned_dataplane_readiness_follows_the_predictor(compat):
    assert asyncio.run(_dataplane(_Model("cloudmask")).ready())
    dp = _dataplane(_Model("cloudmask", dependency=False))
    assert isinstance(dp, compat.VersionedDataPlane)
    assert not asyncio.run(dp.ready())
    assert not asyncio.run(dp.model_ready("cloudmask"))
    assert asyncio.run(dp.model_ready("cloudmask", disable_predictor_health_check=True))  # the infer path


def test_versioned_dataplane_metadata_has_versions(compat):
    from kserve import Model

    class Versioned(Model):
        version = "6"

    m = Versioned("cloudmask-6b")
    m.ready = True
    assert asyncio.run(_dataplane(m).model_metadata("cloudmask-6b"))["versions"] == ["6"]


def test_versioned_dataplane_header_length_is_a_400(compat):
    from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER as HEADER

    dp = _dataplane(_Model("cloudmask"))
    for bad in ("x", "0", "999"):
        with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
            dp.decode_inference_request(b"{}", {HEADER: bad}, "cloudmask")


def test_plain_parameters_refuses_a_grpc_type_kserve_drops():
    from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter

    assert compat_mod.plain_parameters({"level": InferParameter(string_param="L2A")}) == {"level": "L2A"}
    with pytest.raises(ValueError, match="'scale'"):
        compat_mod.plain_parameters({"scale": InferParameter()})


def test_every_patch_is_named_and_documented():
    doc = compat_mod.__doc__
    for name in compat_mod.PATCHES:
        assert callable(getattr(compat_mod, name)), name
        assert f"  {name} " in doc, f"{name} is not described in the module docstring"


def test_binary_input_stays_in_the_body_and_is_released(binary, compat):
    """keep_binary_tensors keeps a binary tensor as a view into the request body (raw_span says where,
    no copy); release_inputs drops kserve's references once the model has decoded it."""
    tif = b"II*\x00" + bytes(range(256)) * 4
    blob = len(tif).to_bytes(4, "little") + tif
    body, n = _body([{"name": "geotiff", "shape": [1], "datatype": "BYTES",
                      "parameters": {"binary_data_size": len(blob)}}], [blob])
    req = InferRequest.from_bytes(body, n, "cloudmask")
    buf, start, size = compat.raw_span(req.inputs[0])
    assert buf is body and (start, size) == (n, len(blob))
    assert req.inputs[0].as_numpy()[0] == tif  # kserve's own reader still works on the view
    compat.release_inputs(req)
    assert compat.raw_span(req.inputs[0]) is None and req.inputs[0]._raw_data is None


def test_body_limit_goes_on_kserve_app_and_comes_off(compat):
    from kserve import model_server as ms

    from cloudmask.bodylimit import BodyLimit

    before = list(ms.app.user_middleware)
    compat.body_limit(1234)
    added = [m for m in ms.app.user_middleware if m not in before]
    assert len(added) == 1 and added[0].cls is BodyLimit and added[0].kwargs == {"max_bytes": 1234}
    compat.body_limit(99)  # once only
    assert len(ms.app.user_middleware) == len(before) + 1
    compat.restore()
    assert list(ms.app.user_middleware) == before


def test_raw_model_infer_hands_kserve_views_into_the_wire_bytes(compat):
    """raw_model_infer: kserve's own gRPC server and servicer, ModelInfer registered without a deserializer;
    the raw contents reach the data plane as views into grpc's bytes of the message (raw_span: where),
    everything else as kserve's own path has it; a malformed message is INVALID_ARGUMENT naming the problem,
    and the server answers the next request; other methods are kserve's; restore() puts the registration back."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import server as grpc_server
    from kserve.protocol.infer_type import InferOutput

    from cloudmask.supervisor import free_port

    generated = grpc_server.grpc_predict_v2_pb2_grpc
    compat.bind_address("127.0.0.1")
    compat.raw_model_infer()
    compat.raw_model_infer()  # once only
    assert grpc_server.grpc_predict_v2_pb2_grpc is not generated and "raw_model_infer" in compat.applied()
    seen = []

    class Plane:
        async def infer(self, request, headers, model_name):
            spans = [compat.raw_span(i) for i in request.inputs]
            seen.append((request, headers, model_name, spans))
            out = InferOutput(name="n", shape=[1], datatype="INT64")
            out.set_data_from_numpy(np.array([len(request.inputs)], dtype=np.int64))
            return InferResponse(model_name=model_name, infer_outputs=[out], response_id=request.id,
                                 from_grpc=True, use_binary_outputs=True), {}

        async def live(self):
            return {"status": "alive"}

    tif = b"II*\x00" + bytes(range(256))
    msg = pb.ModelInferRequest(model_name="cloudmask", id="req-7",
                               raw_input_contents=[len(tif).to_bytes(4, "little") + tif, b"\x03\0\0\0xyz"])
    msg.inputs.add(name="geotiff", datatype="BYTES", shape=[1])
    msg.inputs.add(name="other", datatype="BYTES", shape=[1])
    msg.outputs.add(name="mask")
    msg.parameters["window"].string_param = "0,0,64,64"
    wire = msg.SerializeToString()
    port = free_port()

    async def scenario():
        server = grpc_server.GRPCServer(port, Plane(), None, kwargs={
            "grpc_max_send_message_length": 2**20, "grpc_max_receive_message_length": 2**20})
        task = asyncio.ensure_future(server.start(1))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                await asyncio.wait_for(ch.channel_ready(), 30)
                infer = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                       request_serializer=None, response_deserializer=pb.ModelInferResponse.FromString)
                bad = []
                for junk in (wire[:-2], b"\x0e", b"\x0a\x02\xff\xfe"):  # cut short; wire type 6; name not UTF-8
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await infer(junk)
                    bad.append((err.value.code(), err.value.details()))
                res = await infer(wire, metadata=(("x-request-id", "abc"), ("traceparent", "00-1-2-01")))
                live = await ch.unary_unary("/inference.GRPCInferenceService/ServerLive",
                                            response_deserializer=pb.ServerLiveResponse.FromString)(
                    pb.ServerLiveRequest().SerializeToString())
                return bad, res, live
        finally:
            await server.stop(0)
            task.cancel()

    bad, res, live = asyncio.run(scenario())
    assert [code for code, _ in bad] == [grpc.StatusCode.INVALID_ARGUMENT] * 3
    assert "runs past the end" in bad[0][1] and "wire type 6" in bad[1][1]
    assert all("not a valid inference.ModelInferRequest" in details for _, details in bad)
    assert res.id == "req-7" and live.live
    request, headers, model_name, spans = seen[0]
    assert len(seen) == 1 and model_name == "cloudmask" and request.id == "req-7" and request.from_grpc
    assert headers["x-request-id"] == "abc" and headers["traceparent"] == "00-1-2-01"
    assert [i.name for i in request.inputs] == ["geotiff", "other"] and request.use_binary_outputs
    assert [o.name for o in request.request_outputs] == ["mask"]
    assert compat.plain_parameters(request.parameters) == {"window": "0,0,64,64"}
    buf = spans[0][0]
    assert isinstance(buf, bytes) and len(buf) == len(wire) and spans[1][0] is buf  # one buffer: the message's
    assert [buf[s:s + n] for _, s, n in spans] == list(msg.raw_input_contents)
    assert all(isinstance(i._raw_data, memoryview) for i in request.inputs)
    assert request.inputs[0].as_numpy()[0] == tif  # kserve's own reader works on the view
    compat.restore()
    assert grpc_server.grpc_predict_v2_pb2_grpc is generated
