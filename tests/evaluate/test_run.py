"""`cloudmask evaluate` end to end on a scene folder written here, with the real spectral-test baselines in models/
(peers off to keep it quick; tests/evaluate/test_peers.py covers ukis-csmask)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cloudmask.evaluate.run import predict, served_mask
from cloudmask.evaluate.__main__ import main

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def baseline_6b():
    from cloudmask.savedmodel import Runner

    return Runner(MODELS / "baseline-6b" / "1")


def test_chip_and_stitch_path_equals_one_call_for_a_per_pixel_model(baseline_6b):
    """The baseline is per-pixel, so chipping a 600x700 scene into overlapping 512 chips and stitching them back
    must give what one call on the whole scene gives: the evaluation path adds nothing of its own."""
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 0.8, (600, 700, 6)).astype(np.float32)
    whole = baseline_6b(img[None])[0]
    stitched = predict(baseline_6b, img, chip=512, overlap=64, batch=2)
    np.testing.assert_allclose(stitched, whole, atol=1e-5)


def test_served_path_equals_one_call_for_a_per_pixel_model(baseline_6b):
    """What evaluate scores is the service's geometry: fitted chips (here 2 x 2 of a 1100 x 1300 scene at 768 px
    largest, the last ones overhanging and padded) and each chip's classes cropped; for a per-pixel model that is
    the whole-scene call (so this checks where chips go and that they cover the scene, not crop against blend)."""
    from cloudmask import contract
    from cloudmask.raster import tile

    rng = np.random.default_rng(1)
    img = rng.uniform(0, 0.8, (1100, 1300, 6)).astype(np.float32)
    tp = tile.fitted(1100, 1300, 768, 64)
    assert len(tp.rows) > 1 and len(tp.cols) > 1
    whole = contract.classes(baseline_6b(np.pad(img, ((0, 4), (0, 12), (0, 0)), mode="reflect")[None])[0])
    np.testing.assert_array_equal(served_mask(baseline_6b, img, 768, 64, batch=3), whole[:1100, :1300])


def test_evaluate_scene_dir_writes_metrics_and_panels(tmp_path, labelled_dir, capsys):
    d = labelled_dir()
    out = tmp_path / "out"
    assert main(["--scene", str(d), "--model-dir", str(MODELS), "--models", "baseline-6b,baseline-4b",
                 "--no-peers", "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["summary"].startswith("1 labelled scene from 1 acquisition")
    assert {"baseline-6b v1", "baseline-4b v1"} <= set(doc["models"])
    r = doc["models"]["baseline-6b v1"]
    sc = r["per_scene"]["myscene"]
    assert sc["three_class"]["pixels"] == 64 * 63 - 4  # nodata column and 255 labels not scored
    assert sum(map(sum, sc["cloud_vs_rest"]["confusion"])) == 64 * 63 - 4
    # the textbook spectral tests find a bright white block and a dark NIR/SWIR block exactly
    assert sc["cloud_vs_rest"]["iou"]["cloud"] == pytest.approx(1.0)
    assert sc["three_class"]["iou"]["shadow"] == pytest.approx(1.0)
    assert r["pooled"]["cloud_vs_rest"]["confusion"] == sc["cloud_vs_rest"]["confusion"]  # one scene: pooled = it
    assert r["seconds_per_mpx"] > 0
    png = out / "panels" / "myscene.png"
    with Image.open(png) as im:
        assert im.width == 256 * 3  # RGB | truth | baseline-6b (the widest the scene allows); peers were off
    text = capsys.readouterr().out
    assert "Cloud IoU per scene" in text and "1 with shadow labels (myscene)" in text
    md = (out / "metrics.md").read_text()
    assert "| baseline-6b v1 | 1 | 1.000 |" in md  # model, scenes, pooled cloud IoU
    # the command recorded is the one given, not the test runner's own argv
    assert md.startswith(f"`cloudmask evaluate --scene {d} --model-dir {MODELS} --models baseline-6b,baseline-4b "
                         f"--no-peers --out {out}`")


def test_peers_run_on_the_same_pixels_and_agreement_is_not_accuracy(labelled_dir):
    """With peers on, every ukis-csmask variant the bands allow is scored, and the baseline's match with the
    teacher variant (same band count, the scene's level) is reported under `agreement_with_teacher`."""
    from cloudmask.evaluate.candidates import candidates
    from cloudmask.evaluate.run import evaluate
    from cloudmask.evaluate.labelled import load_dir

    scene = load_dir(labelled_dir())  # L2A, 6 bands
    doc = evaluate([scene], candidates(MODELS, {"baseline-6b"}, peers=True, dl_l8s2_uv=False), panels=False,
                   log=lambda *a: None)
    assert set(doc["models"]) == {"baseline-6b v1", "ukis-csmask 6b L1C", "ukis-csmask 4b L1C",
                                  "ukis-csmask 6b L2A", "ukis-csmask 4b L2A"}
    for name, r in doc["models"].items():
        assert r["per_scene"]["myscene"]["three_class"]["pixels"] == 64 * 63 - 4, name
    agree = doc["models"]["baseline-6b v1"]["per_scene"]["myscene"]["agreement_with_teacher"]
    assert agree["teacher"] == "ukis-csmask 6b L2A"
    assert 0.0 <= agree["agreement"] <= 1.0
    assert "accuracy" not in agree
    assert all("agreement_with_teacher" not in r["per_scene"]["myscene"]
               for n, r in doc["models"].items() if n.startswith("ukis"))
