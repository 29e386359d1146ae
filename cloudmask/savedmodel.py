"""Find, load and run the SavedModels under a model directory.

Layout: <root>/<model-name>/<version>/ holding a TF SavedModel and contract.json (see
cloudmask.contract). The highest numeric version of each name is served. A <root> that is
itself one version folder (has contract.json) is served alone: that is what a canary's
storageUri points at.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from cloudmask import contract

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ModelDir:
    path: Path
    contract: contract.ModelContract
    version: str
    card: dict


def _version_key(p: Path):
    return (0, int(p.name)) if p.name.isdigit() else (-1, p.name)


def discover(root: Path | str) -> list[ModelDir]:
    root = Path(root)
    if (root / contract.CONTRACT_FILE).is_file():
        candidates = [root]
    else:
        candidates = []
        for name_dir in sorted(p for p in root.glob("*") if p.is_dir()):
            versions = [v for v in name_dir.iterdir() if (v / contract.CONTRACT_FILE).is_file()]
            if versions:
                candidates.append(max(versions, key=_version_key))
    found = []
    for d in candidates:
        c, raw = contract.read_contract(d)
        found.append(ModelDir(path=d, contract=c, version=str(raw.get("version", d.name)), card=raw))
    return found


class Runner:
    """A loaded SavedModel: (N, H, W, B) float32 reflectance -> (N, H, W, C) float32 probabilities."""

    def __init__(self, model_dir: Path | str):
        import tensorflow as tf  # the predictor image has TF; the transformer's never imports this

        self._tf = tf
        self._module = tf.saved_model.load(str(model_dir))
        self._fn = self._module.signatures["serving_default"]
        args, kwargs = self._fn.structured_input_signature
        if args or len(kwargs) != 1:
            raise ValueError(f"{model_dir}: serving_default must take exactly one named input")
        (self.input_key, spec), = kwargs.items()
        outs = self._fn.structured_outputs
        if len(outs) != 1:
            raise ValueError(f"{model_dir}: serving_default must return exactly one output")
        self.output_key = next(iter(outs))
        self.n_bands = spec.shape[-1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self._fn(**{self.input_key: self._tf.constant(x, dtype=self._tf.float32)})
        return out[self.output_key].numpy()
