"""kserve.Model serving one cloudmask SavedModel over V2: reflectance chips in, class probabilities out."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from cloudmask import contract
from cloudmask.kserve_compat import plain_parameters
from cloudmask.raster import scale as scale_ops
from cloudmask.raster.errors import BadInput
from cloudmask.savedmodel import ModelDir, Runner


class SegmentationModel(Model):
    def __init__(self, model_dir: ModelDir):
        super().__init__(model_dir.contract.name)
        self.model_dir = model_dir
        self.contract = model_dir.contract
        self.version = model_dir.version
        self.runner: Runner | None = None
        # One TF call at a time: TF already spreads one call over every core, and
        # interleaving calls only adds memory and latency.
        self._lock = asyncio.Lock()
        # at most one call scaling (or deriving outputs) beside the one in TF: each scaled input is float32,
        # twice its uint16 bytes, so waiting calls must not all scale ahead
        self._stage = asyncio.Semaphore(2)

    def load(self) -> bool:
        self.runner = Runner(self.model_dir.path)
        if self.runner.n_bands not in (None, self.contract.n_bands):
            raise ValueError(f"{self.model_dir.path}: SavedModel takes {self.runner.n_bands} bands, "
                             f"contract says {self.contract.n_bands}")
        # warm up: the first call traces and allocates
        self.runner(np.zeros((1, contract.CHIP_MULTIPLE * 2, contract.CHIP_MULTIPLE * 2,
                              self.contract.n_bands), np.float32))
        self.ready = True
        return self.ready

    def get_input_types(self):
        # a request carries one of the two (cloudmask.contract: FP32 reflectance, or UINT16 DN
        # that the predictor scales itself with the input's `scale` and `offset` parameters)
        b = self.contract.n_bands
        return [{"name": self.contract.input_name, "datatype": "FP32", "shape": [-1, -1, -1, b]},
                {"name": contract.PREDICTOR_INPUT_DN, "datatype": "UINT16", "shape": [-1, -1, -1, b]}]

    def get_output_types(self):
        # asked for by name in `outputs`; a request that names none gets `probabilities`
        c = len(self.contract.classes)
        return [{"name": self.contract.output_name, "datatype": "FP32", "shape": [-1, -1, -1, c]},
                {"name": contract.PREDICTOR_OUTPUT_U8, "datatype": "UINT8", "shape": [-1, -1, -1, c]},
                {"name": contract.PREDICTOR_OUTPUT_CLASSES, "datatype": "UINT8", "shape": [-1, -1, -1]}]

    def _input(self, request: InferRequest) -> tuple[np.ndarray, tuple[float, float] | None]:
        """The request's one input, (N, H, W, B), and (scale, offset) when it holds DN; or InvalidInput."""
        dtypes = {self.contract.input_name: "FP32", contract.PREDICTOR_INPUT_DN: "UINT16"}
        if len(request.inputs) != 1:
            raise InvalidInput(f"{self.name} takes one input, '{self.contract.input_name}' (FP32) or "
                               f"'{contract.PREDICTOR_INPUT_DN}' (UINT16), got {len(request.inputs)}")
        inp = request.inputs[0]
        if inp.name not in dtypes:
            raise InvalidInput(f"{self.name}: unknown input '{inp.name}', expected '{self.contract.input_name}' "
                               f"or '{contract.PREDICTOR_INPUT_DN}'")
        if inp.datatype != dtypes[inp.name]:
            raise InvalidInput(f"{self.name}: input '{inp.name}' must be {dtypes[inp.name]}, got {inp.datatype}")
        shape = list(inp.shape)
        if (len(shape) != 4 or shape[3] != self.contract.n_bands
                or shape[1] % contract.CHIP_MULTIPLE or shape[2] % contract.CHIP_MULTIPLE or min(shape) <= 0):
            raise InvalidInput(
                f"{self.name}: input shape must be [N, H, W, {self.contract.n_bands}] with H and W multiples "
                f"of {contract.CHIP_MULTIPLE}, got {shape}")
        try:
            x = inp.as_numpy().reshape(shape)  # a view of the received bytes
        except Exception as e:  # a payload whose size does not match its shape
            raise InvalidInput(f"{self.name}: input data does not match shape {shape}: {e}") from None
        if inp.name == self.contract.input_name:
            return np.ascontiguousarray(x, dtype=np.float32), None
        try:
            params = plain_parameters(inp.parameters)  # gRPC InferParameter messages or REST values
        except ValueError as e:
            raise InvalidInput(f"{self.name}: '{inp.name}' {e}") from None
        try:  # the transformer's own check (cloudmask.raster.scale.check)
            scaling = scale_ops.check(params.get("scale", contract.DEFAULT_SCALE),
                                      params.get("offset", contract.DEFAULT_OFFSET))
        except BadInput as e:
            raise InvalidInput(f"{self.name}: '{inp.name}' parameters: {e}") from None
        return x, scaling

    def _outputs(self, request: InferRequest) -> list[str]:
        names = [o.name for o in request.request_outputs or ()] or [self.contract.output_name]
        known = [o["name"] for o in self.get_output_types()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidInput(f"{self.name}: unknown output(s) {unknown}; known: {known}")
        return names

    def _scale(self, x: np.ndarray, scaling) -> np.ndarray:
        """Executor thread: DN -> reflectance if need be (the same arithmetic as the transformer's FP32 path, bit
        for bit)."""
        return x if scaling is None else contract.dn_to_reflectance(x, *scaling, self.contract.value_range)

    def _derive(self, probs: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Executor thread: the outputs asked for, from the probabilities."""
        derive = {self.contract.output_name: lambda: probs,
                  contract.PREDICTOR_OUTPUT_U8: lambda: contract.quantise(probs),
                  contract.PREDICTOR_OUTPUT_CLASSES: lambda: contract.classes(probs)}
        return {n: derive[n]() for n in names}

    async def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        x, scaling = self._input(payload)
        names = self._outputs(payload)
        loop = asyncio.get_running_loop()
        # everything off the event loop, so health checks and other requests keep being answered; only the TF call
        # holds the lock: one call's scaling and argmax (single-threaded numpy) overlap the next call's TF work
        async with self._stage:
            x = await loop.run_in_executor(None, self._scale, x, scaling)
            async with self._lock:
                probs = await loop.run_in_executor(None, self.runner, x)
            del x
            arrays = await loop.run_in_executor(None, self._derive, probs, names)
        outputs = []
        for name in names:
            arr = arrays[name]
            out = InferOutput(name=name, shape=list(arr.shape), datatype="FP32" if arr.dtype == np.float32 else "UINT8")
            out.set_data_from_numpy(arr, binary_data=True)
            outputs.append(out)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=self.version,
            infer_outputs=outputs,
            # REST: binary when the caller asked for it (the transformer's hop does), JSON otherwise
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )

