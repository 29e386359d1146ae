"""predictor/union.py: a U-Net joined with the spectral cloud test (cloud = the higher of the two).

Built here from the committed U-Nets into a temporary folder and run through the same Runner the predictor uses:
the output is the rule's, bit for bit against the two models run apart; where the test does not fire it is the
net's answer; probabilities still sum to 1; the contract says what it was built from. The served union models in
models/ are checked to be exactly what the builder makes of the nets they name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cloudmask import contract
from cloudmask.savedmodel import Runner, discover

MODELS = Path(__file__).resolve().parents[2] / "models"


def _scene(n_bands: int) -> np.ndarray:
    """Reflectance with dark ground, bright white cloud-like patches and mid-grey haze."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.02, 0.25, (2, 96, 96, n_bands)).astype(np.float32)
    x[:, 10:40, 10:40, :] = rng.uniform(0.45, 0.6, (2, 30, 30, n_bands))  # bright and white in every band
    x[:, 50:80, 50:90, :3] = 0.22  # haze: near the test's thresholds
    return x


def _served_unions():
    return [m for m in discover(MODELS) if m.card.get("union")]


@pytest.mark.parametrize("net_name,base", [("cloudmask-6b", contract.BASELINE_6B), ("cloudmask-4b", contract.BASELINE_4B)])
def test_union_is_max_of_net_and_test_cloud(tmp_path, net_name, base):
    from predictor import union

    nets = sorted((p for p in (MODELS / net_name).iterdir() if (p / contract.CONTRACT_FILE).is_file()
                   and "union" not in json.loads((p / contract.CONTRACT_FILE).read_text())), key=lambda p: int(p.name))
    net_dir = nets[-1]  # the newest plain U-Net
    out = union.export(net_dir, tmp_path, "99")
    x = _scene(base.n_bands)
    p_net = Runner(net_dir)(x)
    p_test = Runner(MODELS / base.name / "1")(x)  # the baseline model: its cloud is the same test
    got = Runner(out)(x)
    cloud = np.maximum(p_net[..., 1], p_test[..., 1])
    np.testing.assert_allclose(got[..., 1], cloud, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
    quiet = p_test[..., 1] <= p_net[..., 1]  # the test adds nothing here: the net's answer, unchanged
    np.testing.assert_allclose(got[quiet], p_net[quiet], atol=1e-6)
    assert np.any(p_test[..., 1] > p_net[..., 1] + 0.1)  # and the scene has pixels where it does add
    raw = json.loads((out / contract.CONTRACT_FILE).read_text())
    assert raw["union"]["net"] == f"{net_name} v{net_dir.name}" and raw["version"] == "99"
    assert (out / "MODEL_CARD.md").read_text().startswith(f"# {net_name} (version 99)")


def test_served_unions_are_what_the_builder_makes(tmp_path):
    """Every union in models/ answers as the builder's union of the net its contract names does."""
    from predictor import union

    served = _served_unions()
    assert {m.contract.name for m in served} == {"cloudmask-6b", "cloudmask-4b"}
    for m in served:
        net_version = m.card["union"]["net"].rsplit(" v", 1)[1]
        rebuilt = union.export(MODELS / m.contract.name / net_version, tmp_path, m.version)
        x = _scene(m.contract.n_bands)
        np.testing.assert_allclose(Runner(m.path)(x), Runner(rebuilt)(x), atol=1e-6)
