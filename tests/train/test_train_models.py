"""The committed models (models/cloudmask-{6b,4b}/<version>/): contract, signature, size, sane probabilities."""

from pathlib import Path

import numpy as np
import pytest

from cloudmask.contract import CLOUDMASK_4B, CLOUDMASK_6B, read_contract

MODELS = Path(__file__).resolve().parents[2] / "models"


def _latest(name):
    versions = sorted((p for p in (MODELS / name).glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    return versions[-1] if versions else None


@pytest.mark.parametrize("contract", [CLOUDMASK_6B, CLOUDMASK_4B], ids=lambda c: c.name)
def test_committed_model(contract):
    tf = pytest.importorskip("tensorflow")
    d = _latest(contract.name)
    if d is None:
        pytest.skip(f"no exported {contract.name} under {MODELS}")
    c, raw = read_contract(d)
    assert c == contract and raw["version"] == d.name
    assert sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) <= 5_000_000
    assert (d / "model_card.json").exists() and (d / "MODEL_CARD.md").exists()
    sig = tf.saved_model.load(str(d)).signatures["serving_default"]
    x = np.random.default_rng(0).uniform(0.02, 0.3, (2, 48, 64, contract.n_bands)).astype(np.float32)
    x[1] = 0.85  # a uniformly bright, white chip
    p = sig(**{contract.input_name: tf.constant(x)})[contract.output_name].numpy()
    assert p.shape == (2, 48, 64, 3)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    # A white chip (0.85 in every band, SWIR included) is cloud far more than it is shadow.
    assert p[1, ..., 1].mean() > p[1, ..., 2].mean()
