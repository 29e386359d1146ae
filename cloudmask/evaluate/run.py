"""The scoring run of `cloudmask evaluate`: every candidate on every labelled scene whose bands it can read,
through the service's own chip / stitch path (`served_mask`: cloudmask.raster.tile.fitted chips, each chip's classes
cropped by stitch.CropStitcher, as the transformer's default); scores, agreement with the teacher, false alarms on
clear ground. The result is the metrics document (metrics.json)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cloudmask import contract
from cloudmask.evaluate import labelled as scene_mod
from cloudmask.evaluate import metrics
from cloudmask.evaluate.report import fmt


def served_mask(fn, image: np.ndarray, max_chip: int = contract.MAX_CHIP, overlap: int = contract.OVERLAP,
                batch: int = 4, batch_pixels: int = contract.BATCH_PIXELS) -> np.ndarray:
    """(H, W, B) -> (H, W) classes as the service answers them (transformer defaults): chips sized to the raster up
    to `max_chip` on the nets' 16 px grid (tile.fitted; a small scene is one chip of its own size), at most
    `batch` chips and `batch_pixels` chip pixels per call, each chip's classes answering for the pixels nearer its
    centre than any other chip's (stitch.CropStitcher). So the cards score the masks users get."""
    from cloudmask.raster import tile

    return cropped_mask(fn, image, tile.fitted(image.shape[0], image.shape[1], max_chip, overlap), batch,
                        batch_pixels)


def cropped_mask(fn, image: np.ndarray, tp, batch: int = 4, batch_pixels: int | None = contract.BATCH_PIXELS):
    """(H, W, B) -> (H, W) classes of the chips of plan `tp`, each cropped to its span (stitch.CropStitcher)."""
    from cloudmask.raster import stitch, tile

    st = stitch.CropStitcher(tp)
    for pos in tile.batches(tp, batch, batch_pixels):
        st.add(contract.classes(np.asarray(fn(tile.chips(image, tp, pos)))), pos)
    return st.mask()


def predict(fn, image: np.ndarray, chip: int, overlap: int, batch: int) -> np.ndarray:
    """(H, W, B) -> (H, W, 3) probabilities through fixed chips blended over their overlaps (tile.plan,
    stitch.Stitcher): the service's `--stitch blend` geometry before chips were fitted; bench.seams compares it."""
    from cloudmask.raster import stitch, tile

    tp = tile.plan(image.shape[0], image.shape[1], chip=chip, overlap=overlap)
    st = stitch.Stitcher(tp)
    for pos in tile.batches(tp, batch):
        st.add(np.asarray(fn(tile.chips(image, tp, pos))), pos)
    return st.probabilities()


def _score(scene, pred) -> dict:
    cm3 = metrics.confusion(scene.truth, pred, scene.valid)
    cm2 = metrics.to_binary(cm3)
    res = {"cloud_vs_rest": metrics.summary(cm2, scene_mod.CLASSES_CLOUD), "_cm3": cm3, "_cm2": cm2}
    if scene.shadow_labelled:
        res["three_class"] = metrics.summary(cm3, scene_mod.CLASSES_3)
    return res


def evaluate(scene_list, cands, chip=contract.MAX_CHIP, overlap=contract.OVERLAP, batch=4, out: Path | None = None,
             panels: bool = True, log=print, clear_regions=(), masks: dict | None = None) -> dict:
    """Run every candidate on every scene whose bands it can read; return the metrics dict (see metrics.json).

    `chip` is the largest chip side (the transformer's --max_chip), `overlap` the chips' overlap (its --overlap).

    `clear_regions` (cloudmask.evaluate.clear): cloud-free ground on which each candidate's cloud and shadow
    fractions are false alarms; reported apart from the labelled scenes and not in s/Mpx.
    `masks`: filled with {(candidate, scene): predicted mask} when given."""
    from cloudmask.evaluate import clear as clear_mod
    from cloudmask.evaluate import panels as panels_mod

    results: dict[str, dict] = {}
    masks = {} if masks is None else masks
    for c in cands:
        runs = [s for s in scene_list if s.has(c.bands)]
        if not runs:
            continue
        fn = c.fn()
        if fn is None:
            continue
        fn(np.zeros((1, 64, 64, len(c.bands)), np.float32))  # first-call setup is not per-pixel cost
        r = {"kind": c.kind, "bands": list(c.bands), "version": c.version, "level": c.level,
             "cloud_only": c.cloud_only, "per_scene": {}}
        cm2 = np.zeros((2, 2), np.int64)
        cm3 = np.zeros((3, 3), np.int64)
        by_acq: dict[str, dict] = {}  # acquisition -> pooled confusion matrices (the serving gate reads these)
        secs, px = 0.0, 0
        for s in runs:
            t = time.perf_counter()
            pred = served_mask(fn, s.select(c.bands), chip, overlap, batch)
            dt = time.perf_counter() - t
            secs += dt
            px += s.truth.size
            sc = _score(s, pred)
            c2 = sc.pop("_cm2")
            cm2 += c2
            c3 = sc.pop("_cm3")
            if s.shadow_labelled:
                cm3 += c3
            a = by_acq.setdefault(s.group, {"level": s.level, "scenes": [], "cm2": np.zeros((2, 2), np.int64),
                                            "cm3": np.zeros((3, 3), np.int64) if s.shadow_labelled else None})
            a["scenes"].append(s.name)
            a["cm2"] += c2
            if a["cm3"] is not None and s.shadow_labelled:
                a["cm3"] += c3
            sc["seconds"] = dt
            sc["seconds_per_mpx"] = metrics.seconds_per_mpx(dt, s.truth.size)
            r["per_scene"][s.name] = sc
            masks[(c.name, s.name)] = pred
            log(f"  {c.name:24s} {s.name:16s} cloud IoU {fmt(sc['cloud_vs_rest']['iou']['cloud'])}  {dt:6.2f} s")
        r["scenes"] = [s.name for s in runs]
        r["per_acquisition"] = {g: _acquisition(a) for g, a in by_acq.items()}
        r["pooled"] = {"cloud_vs_rest": metrics.summary(cm2, scene_mod.CLASSES_CLOUD)}
        if cm3.sum():
            r["pooled"]["three_class"] = metrics.summary(cm3, scene_mod.CLASSES_3)
            r["shadow_scenes"] = [s.name for s in runs if s.shadow_labelled]
        r["seconds"] = secs
        r["seconds_per_mpx"] = metrics.seconds_per_mpx(secs, px)
        per_region = {g.name: clear_mod.commission(served_mask(fn, g.select(c.bands), chip, overlap, batch))
                      for g in clear_regions if g.has(c.bands)}
        if per_region:
            r["clear_ground"] = {"per_region": per_region, "pooled": clear_mod.pooled(per_region)}
            log(f"  {c.name:24s} clear ground: cloud {r['clear_ground']['pooled']['cloud']:.2%}, "
                f"shadow {r['clear_ground']['pooled']['shadow']:.2%}")
        results[c.name] = r
        c._fn = None  # free the net before the next loads
    _agreement(scene_list, cands, results, masks)
    doc = {"scenes": [_scene_info(s) for s in scene_list], "summary": scene_mod.describe(scene_list),
           "scg_scale": next((s.scale for s in scene_list if s.name == "scg"), None),
           "chip": chip, "overlap": overlap, "stitch": "crop (as the service: fitted chips, classes cropped)",
           "models": results,
           "clear_regions": [{"name": g.name, "shape": list(g.data.shape[:2]), "bands": list(g.bands),
                              "level": g.level, "source": g.source} for g in clear_regions]}
    if out is not None and panels:
        doc["panels"] = [str(p) for p in panels_mod.write_all(scene_list, cands, masks, out / "panels")]
    return doc


def _acquisition(a: dict) -> dict:
    """Pooled scores of one acquisition: cloud IoU (cloud vs rest), shadow IoU where shadow is labelled."""
    out = {"level": a["level"], "scenes": a["scenes"],
           "cloud_iou": float(np.nan_to_num(metrics.iou(a["cm2"])[1])), "labelled_pixels": int(a["cm2"].sum())}
    if a["cm3"] is not None and a["cm3"].sum():
        out["shadow_iou"] = float(np.nan_to_num(metrics.iou(a["cm3"])[contract.SHADOW]))
    return out


def _teacher_for(c, s) -> str:
    """The ukis-csmask variant that labels what this candidate reads: same band count, the scene's level."""
    nb = "6b" if len(c.bands) == 6 else "4b"
    return f"ukis-csmask {nb} {s.level}"


def _agreement(scene_list, cands, results, masks) -> None:
    """Per scene: how often our model and baseline agree with ukis-csmask (our teacher) - agreement, not accuracy."""
    for c in cands:
        if c.kind == "peer" or c.name not in results:
            continue
        for s in scene_list:
            t = _teacher_for(c, s)
            a, b = masks.get((c.name, s.name)), masks.get((t, s.name))
            if a is None or b is None:
                continue
            cm = metrics.confusion(b, a, s.has_data)  # agreement needs no labels: every pixel with data
            results[c.name]["per_scene"][s.name]["agreement_with_teacher"] = {
                "teacher": t, "agreement": metrics.overall_accuracy(cm),
                "cloud_iou_agreement": float(np.nan_to_num(metrics.iou(cm)[contract.CLOUD])),
            }


def _scene_info(s) -> dict:
    return {"name": s.name, "shape": list(s.shape), "bands": list(s.bands), "level": s.level,
            "classes": list(s.classes), "group": s.group, "source": s.source, "scored_pixels": int(s.valid.sum()),
            "cloud_fraction": float((s.truth[s.valid] == contract.CLOUD).mean()) if s.valid.any() else None}


def load_scenes(dirs, scg_scale: float = scene_mod.SCG_SCALE) -> list:
    if dirs:
        return [scene_mod.load_dir(d) for d in dirs]
    return scene_mod.load_default(scg_scale=scg_scale)
