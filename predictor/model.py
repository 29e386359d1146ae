"""kserve.Model serving one cloudmask SavedModel over V2: reflectance chips in, class probabilities out."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from cloudmask import contract

from .savedmodel import ModelDir, Runner


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
        return [{"name": self.contract.input_name, "datatype": "FP32",
                 "shape": [-1, -1, -1, self.contract.n_bands]}]

    def get_output_types(self):
        return [{"name": self.contract.output_name, "datatype": "FP32",
                 "shape": [-1, -1, -1, len(self.contract.classes)]}]

    def _input(self, request: InferRequest) -> np.ndarray:
        if len(request.inputs) != 1:
            raise InvalidInput(f"{self.name} takes one input '{self.contract.input_name}', "
                               f"got {len(request.inputs)}")
        inp = request.inputs[0]
        if inp.name != self.contract.input_name:
            raise InvalidInput(f"{self.name}: unknown input '{inp.name}', expected '{self.contract.input_name}'")
        if inp.datatype != "FP32":
            raise InvalidInput(f"{self.name}: input '{inp.name}' must be FP32, got {inp.datatype}")
        shape = list(inp.shape)
        if (len(shape) != 4 or shape[3] != self.contract.n_bands
                or shape[1] % contract.CHIP_MULTIPLE or shape[2] % contract.CHIP_MULTIPLE or min(shape) <= 0):
            raise InvalidInput(
                f"{self.name}: input shape must be [N, H, W, {self.contract.n_bands}] with H and W multiples "
                f"of {contract.CHIP_MULTIPLE}, got {shape}")
        try:
            x = inp.as_numpy()
        except Exception as e:  # a payload whose size does not match its shape
            raise InvalidInput(f"{self.name}: input data does not match shape {shape}: {e}") from None
        return np.ascontiguousarray(x.reshape(shape), dtype=np.float32)

    async def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        x = self._input(payload)
        async with self._lock:
            # run TF off the event loop so health checks and other requests keep being answered
            probs = await asyncio.get_running_loop().run_in_executor(None, self.runner, x)
        out = InferOutput(name=self.contract.output_name, shape=list(probs.shape), datatype="FP32")
        out.set_data_from_numpy(probs, binary_data=True)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=self.version,
            infer_outputs=[out],
            # REST: binary when the caller asked for it (the transformer's hop does), JSON otherwise
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )
