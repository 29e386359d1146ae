"""transformer.model in process: preprocess -> predict -> postprocess over a real gRPC channel (hop.channel) to a
real in-process predictor: predictor.model.SegmentationModel (its input checks, DN scaling and output derivation)
behind a grpc.aio server, with a numpy spectral rule as its net. No subprocess, no kserve ModelServer."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from kserve.predictor_config import PredictorConfig
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from kserve.protocol.infer_type import InferInput, InferRequest

from cloudmask import contract
from cloudmask.raster import scale as scale_ops
from cloudmask.raster import stitch, tile
from cloudmask.savedmodel import ModelDir
from predictor.model import SegmentationModel
from transformer import hop
from transformer.model import CloudMaskTransformer, PredictorTimeout


def net(x: np.ndarray) -> np.ndarray:
    """(N, H, W, B) reflectance -> (N, H, W, 3) probabilities: cloud where blue is bright, shadow where NIR is dark;
    like a real net, less sure near the chip's edges (blue dimmed there), so overlapping chips disagree a little."""
    blue, nir = x[..., 0], x[..., 3]  # B02 and B08 in both variants' band order
    h, w = x.shape[1:3]
    edge = np.minimum.outer(np.minimum(np.arange(h), np.arange(h)[::-1]), np.minimum(np.arange(w), np.arange(w)[::-1]))
    blue = blue * (0.8 + 0.2 * np.minimum(edge / 48.0, 1.0))
    cloud = 1 / (1 + np.exp(-(blue - 0.3) * 40))
    shadow = (1 - cloud) / (1 + np.exp((nir - 0.1) * 40))
    return np.stack([1 - cloud - shadow, cloud, shadow], axis=-1).astype(np.float32)


class Predictor(pb_grpc.GRPCInferenceServiceServicer):
    """The predictor's kserve Model for every contract, answering V2 gRPC; records each call's metadata."""

    def __init__(self, delay_s: float = 0.0):
        self.models = {}
        for c in contract.CONTRACTS.values():
            m = SegmentationModel(ModelDir(path=None, contract=c, version="7", card={}))
            m.runner, m.ready = net, True
            self.models[c.name] = m
        self.delay_s = delay_s
        self.metadata: list[dict] = []
        self.ready = True

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.ready)

    async def ModelInfer(self, request, context):
        self.metadata.append(dict(context.invocation_metadata()))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        res = await self.models[request.model_name].predict(InferRequest.from_grpc(request))
        return res.to_grpc()


def serve(predictor: Predictor, test, **transformer_kw):
    """Run `test(transformer, predictor)` against `predictor` served on a loopback port."""

    async def main():
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1),
                                          ("grpc.max_send_message_length", -1)])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(predictor, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            return await test(CloudMaskTransformer(**transformer_kw), port)
        finally:
            await server.stop(None)

    return asyncio.run(main())


@pytest.fixture
def predictor_at(monkeypatch):
    """predictor_at(port, timeout_s): the transformer's predictor_config (kserve reads it from its context)."""

    def at(port, timeout_s=10):
        cfg = PredictorConfig(predictor_host=f"127.0.0.1:{port}", predictor_protocol="grpc-v2",
                              predictor_request_timeout_seconds=timeout_s, predictor_request_retries=3)
        monkeypatch.setattr(CloudMaskTransformer, "predictor_config", property(lambda self: cfg))

    return at


def _request(tif: bytes) -> InferRequest:
    inp = InferInput(name=contract.INPUT_GEOTIFF, shape=[1], datatype="BYTES")
    inp.set_data_from_numpy(np.array([tif], dtype=object), binary_data=True)
    return InferRequest(model_name=contract.SERVICE_NAME, infer_inputs=[inp], request_id="req-1")


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(200, 2500, size=(4, h, w), dtype=np.uint16)
    data[0, : h // 3, : w // 2] = 6000  # bright blue: cloud
    data[0, h // 3: h // 2, :] = rng.integers(2600, 3600, size=(h // 2 - h // 3, w))  # haze: near the cloud threshold
    data[3, h // 2:, w // 2:] = 500  # dark NIR: shadow
    data[:, -5:, :7] = 0  # all bands 0: nodata
    return data


def _expected(data: np.ndarray, model: contract.ModelContract, how: str = "crop") -> np.ndarray:
    """The same mask computed directly with the library's maths (no service, no hop): chips' classes cropped to
    their spans (crop) or probabilities blended (blend)."""
    invalid = scale_ops.nodata_mask(data, None)
    image = scale_ops.to_reflectance(data, contract.DEFAULT_SCALE, 0.0, model.value_range)
    plan = tile.fitted(*image.shape[:2], contract.MAX_CHIP, 64)  # the service's chips
    st = stitch.Stitcher(plan) if how == "blend" else stitch.CropStitcher(plan)
    for pos in tile.batches(plan, 4, contract.BATCH_PIXELS):
        p = net(tile.chips(image, plan, pos))
        st.add(p if how == "blend" else contract.classes(p), pos)
    return stitch.to_mask(st.probabilities(), invalid) if how == "blend" else st.mask(invalid)


@pytest.mark.parametrize("how", ["crop", "blend"])
@pytest.mark.parametrize("h,w", [(1100, 2100), (200, 180)])  # many chips stitched; one chip (the classes output)
def test_mask_over_the_hop_is_the_library_mask(geotiff_bytes, predictor_at, h, w, how):
    data = _scene(h, w)
    tif = geotiff_bytes(data, descriptions=["B02", "B03", "B04", "B08"])
    predictor = Predictor()
    headers = {"X-Request-Id": "abc-123", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
               "b3": "80f198ee56343ba8-e457b5a2e4d86bd1-1", "cookie": "not forwarded"}

    async def test(m, port):
        predictor_at(port)
        assert await m.predictor_ready()
        job = await m.preprocess(_request(tif))
        job = await m.predict(job, headers=headers)
        return job, await m.postprocess(job)

    job, res = serve(predictor, test, stitch=how)
    model = contract.route("cloudmask", ("B02", "B03", "B04", "B08"), job.level)
    assert res.model_version == f"{model.name}:7" and res.parameters["chips"] == len(job.plan)
    out = {o.name: o.as_numpy() for o in res.outputs}
    expected = _expected(data, model, how)
    np.testing.assert_array_equal(out[contract.OUTPUT_MASK], expected)
    if len(job.plan) > 1:  # the two ways differ only near where chips meet
        other = _expected(data, model, "blend" if how == "crop" else "crop")
        assert 0 < np.count_nonzero(other != expected) < 0.02 * expected.size
    cloud, shadow = stitch.cover(expected)
    assert out[contract.OUTPUT_CLOUD_COVER][0] == pytest.approx(cloud) and cloud > 0.05
    assert out[contract.OUTPUT_SHADOW_COVER][0] == pytest.approx(shadow) and shadow > 0.05
    # one call per batch: at most 4 chips and four 512 px chips' worth of pixels
    assert len(predictor.metadata) == len(list(tile.batches(job.plan, 4, contract.BATCH_PIXELS)))
    assert len(job.plan) == 1 or len(predictor.metadata) > 1
    for md in predictor.metadata:  # the forwardable headers travel with every call, and only those
        assert md["x-request-id"] == "abc-123" and md["traceparent"] == headers["traceparent"]
        assert md["b3"] == headers["b3"] and "cookie" not in md


def test_readiness_follows_the_predictor(predictor_at):
    predictor = Predictor()

    async def test(m, port):
        predictor_at(port)
        first = await m.predictor_ready()
        predictor.ready = False
        return first, await m.predictor_ready()

    assert serve(predictor, test) == (True, False)


def test_a_slow_predictor_gives_the_deadline_error(geotiff_bytes, predictor_at):
    tif = geotiff_bytes(_scene(64, 64), descriptions=["B02", "B03", "B04", "B08"])

    async def test(m, port):
        predictor_at(port, timeout_s=0.3)
        job = await m.preprocess(_request(tif))
        with pytest.raises(PredictorTimeout, match="did not answer within 0.3 s"):
            await m.predict(job)

    serve(Predictor(delay_s=2.0), test, timeout_s=0.3)


def test_forwarded_headers_are_the_tracing_ones():
    got = hop.forwarded({"X-Request-ID": "r", "TraceParent": "t", "tracestate": "s", "x-b3-traceid": "b",
                         "content-type": "application/json", "cookie": "c", "x-b3-sampled": None})
    assert got == {"x-request-id": "r", "traceparent": "t", "tracestate": "s", "x-b3-traceid": "b"}
    assert hop.forwarded(None) == {}


def test_channel_options_carry_kserves_retry_policy_and_capped_backoff():
    import json

    opts = dict(hop.channel_options(3))
    assert opts["grpc.max_reconnect_backoff_ms"] == 1000 and opts["grpc.enable_retries"] == 1
    policy = json.loads(opts["grpc.service_config"])["methodConfig"][0]["retryPolicy"]
    assert policy == {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
                      "retryableStatusCodes": ["UNAVAILABLE"]}
    assert "grpc.service_config" not in dict(hop.channel_options(0))
