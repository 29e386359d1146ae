"""Writing measured metrics into a model card touches only the metrics section / key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudmask.evaluate import cards
from cloudmask.evaluate.candidates import candidates
from cloudmask.evaluate.run import evaluate
from cloudmask.evaluate.labelled import load_dir

MODELS = Path(__file__).resolve().parents[2] / "models"


def _doc(labelled_dir):
    scene = load_dir(labelled_dir())
    d = evaluate([scene], candidates(MODELS, {"baseline-6b", "baseline-4b"}, peers=False), panels=False,
                 log=lambda *a: None)
    d["command"] = "cloudmask evaluate --scene myscene"
    return d


def test_update_replaces_only_the_metrics_section(tmp_path, labelled_dir):
    doc = _doc(labelled_dir)
    card_dir = tmp_path / "card"
    card_dir.mkdir()
    (card_dir / "MODEL_CARD.md").write_text("# m\n\nintro\n\n## Measured metrics\n\nTO BE FILLED\n\n## Licence\n\nMIT\n")
    (card_dir / "model_card.json").write_text(json.dumps({"name": "m", "metrics": "TO BE FILLED", "bands": [1]}))
    written = cards.update(card_dir, doc, "baseline-6b v1")
    assert len(written) == 2
    md = (card_dir / "MODEL_CARD.md").read_text()
    assert md.startswith("# m\n\nintro\n\n## Measured metrics\n")
    assert "TO BE FILLED" not in md and md.endswith("`make bench`.\n\n## Licence\n\nMIT\n")  # blank line kept
    assert "`cloudmask evaluate --scene myscene`" in md
    assert "| baseline-6b v1 | 1.000 |" in md  # this row first, its pooled cloud IoU on the synthetic scene
    assert "baseline-4b v1" not in md  # only rows reading as many bands
    card = json.loads((card_dir / "model_card.json").read_text())
    assert card["name"] == "m" and card["bands"] == [1]
    assert card["metrics"]["rows"]["baseline-6b v1"]["cloud_iou"] == pytest.approx(1.0)
    assert card["metrics"]["target_cloud_iou_vs_best_peer"] is None  # no peer was run

    # a second run replaces the section again instead of appending
    cards.update(card_dir, doc, "baseline-6b v1")
    assert (card_dir / "MODEL_CARD.md").read_text() == md
