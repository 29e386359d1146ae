"""The `cloudmask` transformer: GeoTIFF in, cloud/shadow mask out; the predictor does the maths.

preprocess: decode -> bands -> scale -> tile plan (plain functions in this package).
predict:    kserve's own hop (gRPC V2 or REST V2) to the predictor, one call per batch of chips,
            a few in flight at once; overridden only because one request becomes many hops.
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
from grpc_interceptor.exceptions import ResourceExhausted
import httpx
import numpy as np
from kserve import Model
from kserve.errors import InvalidInput, ServerNotReady
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput

from cloudmask import contract

from . import bands as band_ops
from . import decode as decode_ops
from . import encode as encode_ops
from . import request as request_ops
from . import scale as scale_ops
from . import stitch as stitch_ops
from . import tile as tile_ops
from .errors import BadInput, OverBudget

log = logging.getLogger(__name__)


class RequestTooLarge(ResourceExhausted):
    """Over the pixel budget. gRPC: kserve's interceptor passes grpc-interceptor's exceptions
    through as their own status (RESOURCE_EXHAUSTED); REST: a handler registered in
    transformer.__main__ answers 413."""

    def __init__(self, message: str):
        super().__init__(details=message)


@dataclasses.dataclass
class Job:
    """What preprocess hands to predict and postprocess for one request."""

    request_id: str
    model: contract.ModelContract
    image: np.ndarray  # (H, W, B) reflectance
    invalid: np.ndarray  # (H, W) bool nodata
    plan: tile_ops.TilePlan
    raster: decode_ops.Raster
    params: request_ops.Params
    band_names: tuple[str, ...]
    offset: float
    binary: bool = True  # REST binary extension or gRPC; False: plain JSON
    probabilities: np.ndarray | None = None
    model_version: str | None = None
    seconds: dict = dataclasses.field(default_factory=dict)


def file_offset(tags: dict) -> float | None:
    """BOA_ADD_OFFSET from the file's tags (as written by tools that keep S2 metadata), if any."""
    for key in ("BOA_ADD_OFFSET", "boa_add_offset", "RADIO_ADD_OFFSET"):
        if key in tags:
            try:
                return float(tags[key])
            except ValueError:
                return None
    return None


class CloudMaskTransformer(Model):
    def __init__(self, name: str = contract.SERVICE_NAME, family: str = "cloudmask",
                 max_pixels: int = 4096 * 4096, batch_size: int = 4, max_in_flight: int = 2,
                 overlap: int = 64, timeout_s: float = 120.0):
        super().__init__(name)
        if family not in contract.FAMILIES:
            raise ValueError(f"unknown model family {family!r}; known: {sorted(contract.FAMILIES)}")
        self.family = family
        self.max_pixels = max_pixels
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.overlap = overlap
        self.timeout_s = timeout_s
        self.ready = True

    # -- V2 metadata of the service --------------------------------------------------------
    def get_input_types(self):
        return [{"name": contract.INPUT_GEOTIFF, "datatype": "BYTES", "shape": [1]}]

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
        payload = request_ops.geotiff_bytes(request.inputs)
        chosen = {}

        def pick(descriptions, count):  # resolve names and the model before any pixel is read
            chosen["names"] = names = band_ops.resolve(descriptions, count, params.bands)
            chosen["model"] = model = band_ops.choose_model(self.family, names)
            return [names.index(b) + 1 for b in model.bands]

        raster = decode_ops.decode(payload, window=params.window, max_pixels=self.max_pixels, pick=pick)
        names, model = chosen["names"], chosen["model"]
        data = raster.data  # already the model's bands, in its order
        offset = params.offset if params.offset is not None else (file_offset(raster.tags) or 0.0)
        scale, offset = scale_ops.check(params.scale, offset)
        invalid = scale_ops.nodata_mask(data, raster.nodata)
        image = scale_ops.to_reflectance(data, scale, offset, model.value_range)
        h, w = image.shape[:2]
        job = Job(request_id=request.id or str(uuid.uuid4()), model=model, image=image, invalid=invalid,
                  plan=tile_ops.plan(h, w, overlap=self.overlap), raster=raster, params=params,
                  band_names=names, offset=offset,
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

    # -- the hop ---------------------------------------------------------------------------
    def _hop_request(self, job: Job, chips: np.ndarray) -> InferRequest:
        inp = InferInput(name=job.model.input_name, shape=list(chips.shape), datatype="FP32")
        inp.set_data_from_numpy(chips, binary_data=True)
        return InferRequest(model_name=job.model.name, infer_inputs=[inp], request_id=job.request_id,
                            parameters={"binary_data_output": True},
                            request_outputs=[RequestedOutput(job.model.output_name, {"binary_data": True})])

    async def _infer(self, req: InferRequest) -> InferResponse:
        cfg = self.predictor_config
        try:
            if cfg.protocol == "grpc-v2":
                return await self._grpc_client.infer(req, timeout=self.timeout_s,
                                                     headers=(("request_type", "grpc_v2"),
                                                              ("response_type", "grpc_v2")))
            # REST: call kserve's client without the JSON content type that Model._http_predict
            # forces, so the chips travel as binary tensors and the model name is the chosen variant
            return await self._http_client.infer(cfg.predictor_base_url, data=req, model_name=req.model_name,
                                                 headers={}, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ServerNotReady(f"predictor unavailable at {cfg.predictor_host}: {e.details()}") from None
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidInput(f"predictor refused the chips: {e.details()}") from None
            raise
        except (httpx.ConnectError, httpx.TimeoutException) as e:
            raise ServerNotReady(f"predictor unavailable at {cfg.predictor_host}: {e}") from None

    async def predict(self, job: Job, headers=None, response_headers=None) -> Job:
        t0 = time.perf_counter()
        stitcher = stitch_ops.Stitcher(job.plan, len(job.model.classes))
        gate = asyncio.Semaphore(self.max_in_flight)

        async def one(positions):
            # take the gate before cutting the chips: only max_in_flight batches exist at a time
            async with gate:
                chips = tile_ops.chips(job.image, job.plan, positions)
                res = await self._infer(self._hop_request(job, chips))
            out = next((o for o in res.outputs if o.name == job.model.output_name), None)
            if out is None:
                raise RuntimeError(f"predictor answered without '{job.model.output_name}'")
            stitcher.add(out.as_numpy().reshape(chips.shape[:3] + (-1,)), positions)
            return res.model_version

        versions = await asyncio.gather(*(one(p) for p in tile_ops.batches(job.plan, self.batch_size)))
        job.model_version = versions[0] if versions else None
        job.probabilities = stitcher.probabilities()
        job.seconds["predict"] = time.perf_counter() - t0
        return job

    # -- postprocess -----------------------------------------------------------------------
    async def postprocess(self, job: Job, headers=None, response_headers=None) -> InferResponse:
        return await asyncio.get_running_loop().run_in_executor(None, self.respond, job)

    def respond(self, job: Job) -> InferResponse:
        """The raster half of postprocess: stitched probabilities -> mask, covers, V2 response."""
        mask = stitch_ops.to_mask(job.probabilities, job.invalid)
        cloud, shadow = stitch_ops.cover(mask)
        wanted = job.params.outputs or (contract.OUTPUT_MASK, contract.OUTPUT_CLOUD_COVER,
                                         contract.OUTPUT_SHADOW_COVER)
        outputs = []
        for name in wanted:
            if name == contract.OUTPUT_MASK_GEOTIFF:
                tif = encode_ops.encode(mask, job.raster.crs, job.raster.transform, tags={
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
                        "offset": f"{job.offset:g}",
                        "height": int(mask.shape[0]), "width": int(mask.shape[1]),
                        "chips": len(job.plan)},
            use_binary_outputs=job.binary,
        )
