"""`cloudmask evaluate`: score our models, the spectral baselines and peer tools on labelled scenes.

Every candidate sees the same pixels through the same path as the service: the scene's reflectance,
the candidate's bands, cloudmask.raster.tile chips (512 px, 64 px overlap; a smaller scene is one padded
chip) and cloudmask.raster.stitch blending, then argmax. Candidates:
  * every model under --model-dir (cloudmask-6b/-4b, baseline-6b/-4b) whose bands the scene has;
  * ukis-csmask, L1C and L2A variants, 6-band and 4-band, whichever the scene's bands allow;
  * DL-L8S2-UV (6- and 4-band, cloud only) when its weights are in ../shared/peers.
Scores: cloud vs not-cloud on every scene (predicted shadow counts as not-cloud), three classes on
scenes whose labels have shadow; pooled over scenes and per scene; seconds per megapixel of the whole
chip-predict-stitch path. Agreement with ukis-csmask (the teacher of our U-Nets) is reported as
agreement, never as accuracy. False alarms: the fractions called cloud and shadow on held-out clear
ground (cloudmask.evaluate.clear; `--no-clear` skips it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import time
from pathlib import Path
from typing import Callable

import numpy as np

from cloudmask import contract
from cloudmask.evaluate import metrics
from cloudmask.evaluate import scenes as scene_mod

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Candidate:
    name: str  # row label, e.g. "cloudmask-6b v1", "ukis-csmask 6b L1C"
    kind: str  # "ours", "baseline", "peer"
    bands: tuple[str, ...]
    load: Callable[[], Callable[[np.ndarray], np.ndarray]]  # lazy: heavy nets load only when a scene needs them
    level: str | None = None  # product level a peer variant was trained for
    cloud_only: bool = False  # predicts no shadow class
    version: str = ""
    path: Path | None = None  # model folder, for ours and the baselines
    _fn: Callable | None = None

    def fn(self):
        if self._fn is None:
            self._fn = self.load()
        return self._fn


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scene", action="append", type=Path, metavar="DIR", default=None,
                   help="a labelled scene folder (image GeoTIFF + label.tif [+ scene.json]); repeatable. "
                        "Default: the validation scenes in $CLOUDMASK_SHARED/data/labelled")
    p.add_argument("--model-dir", type=Path, default=REPO / "models", help="models to score (default: %(default)s)")
    p.add_argument("--models", default=None, help="comma-separated model names to keep (default: all found)")
    p.add_argument("--no-peers", action="store_true", help="skip ukis-csmask and DL-L8S2-UV")
    p.add_argument("--no-dl-l8s2-uv", action="store_true", help="skip the optional DL-L8S2-UV peer")
    p.add_argument("--out", type=Path, default=Path("out/evaluate"), help="metrics.json and PNG panels go here")
    p.add_argument("--chip", type=int, default=contract.CHIP)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--batch", type=int, default=4, help="chips per predictor call")
    p.add_argument("--no-panels", action="store_true")
    p.add_argument("--no-clear", action="store_true",
                   help="skip the false-alarm check on held-out clear ground (cloudmask.evaluate.clear)")
    p.add_argument("--update-cards", action="store_true",
                   help="write the measured metrics into the `## Measured metrics` section of each scored U-Net's "
                        "MODEL_CARD.md and the `metrics` key of its model_card.json")
    p.add_argument("--no-heldout", action="store_true",
                   help="skip the held-out real acquisitions with built labels (cloudmask.evaluate.heldout)")
    p.add_argument("--gate", type=Path, default=None, metavar="ROUTES_JSON",
                   help="decide which model serves which band set and level from these metrics (cloudmask.evaluate."
                        "gate) and write the routing table, e.g. cloudmask/routes.json")
    p.add_argument("--scg-scale", type=float, default=scene_mod.SCG_SCALE,
                   help="divisor that turns the scg scene's values into reflectance (default %(default)s, decided "
                        "without labels: see docs/EVALUATION.md); other values are for sensitivity checks only")


def candidates(model_dir: Path, keep=None, peers: bool = True, dl_l8s2_uv: bool = True) -> list[Candidate]:
    from cloudmask import peers as peer_mod

    out = []
    if model_dir.is_dir():
        from cloudmask.savedmodel import Runner, discover

        for md in discover(model_dir):
            if keep and md.contract.name not in keep:
                continue
            kind = "baseline" if md.contract.name.startswith("baseline") else "ours"
            out.append(Candidate(f"{md.contract.name} v{md.version}", kind, md.contract.bands,
                                 load=lambda p=md.path: Runner(p), version=md.version, path=md.path))
    if peers:
        for level in peer_mod.PRODUCT_LEVELS:
            for bands in (contract.BANDS_6, contract.BANDS_4):
                name = peer_mod.ukis_model_name(bands, level)
                out.append(Candidate(f"ukis-csmask {name[6:8]} {level.upper()}", "peer", bands,
                                     load=lambda b=bands, lv=level: peer_mod.ukis_session(b, lv),
                                     level=level.upper(), version=name))
        if dl_l8s2_uv:
            for bands, fname in peer_mod.DL_L8S2_UV_FILES.items():
                if (peer_mod.dl_l8s2_uv_dir() / fname).is_file():
                    out.append(Candidate(f"DL-L8S2-UV {len(bands)}b", "peer", bands,
                                         load=lambda b=bands: peer_mod.dl_l8s2_uv_session(b),
                                         level="L1C", cloud_only=True, version=fname))
    seen: dict[str, Candidate] = {}
    for c in out:  # results are keyed by name: two folders holding the same model and version would overwrite
        if c.name in seen:
            raise ValueError(f"two candidates are both called {c.name!r}: {seen[c.name].path} and {c.path}; "
                             "give them different versions or score them in separate runs")
        seen[c.name] = c
    return out


def predict(fn, image: np.ndarray, chip: int, overlap: int, batch: int) -> np.ndarray:
    """(H, W, B) -> (H, W, 3) probabilities through the service's chip / stitch path."""
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


def evaluate(scene_list, cands, chip=contract.CHIP, overlap=64, batch=4, out: Path | None = None,
             panels: bool = True, log=print, clear_regions=(), masks: dict | None = None) -> dict:
    """Run every candidate on every scene whose bands it can read; return the metrics dict (see metrics.json).

    `clear_regions` (cloudmask.evaluate.clear): cloud-free ground on which each candidate's cloud and shadow
    fractions are false alarms; reported apart from the labelled scenes and not in s/Mpx.
    `masks`: filled with {(candidate, scene): predicted mask} when given."""
    from cloudmask.evaluate import clear as clear_mod
    from cloudmask.raster.stitch import to_mask

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
            pred = to_mask(predict(fn, s.select(c.bands), chip, overlap, batch))
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
            log(f"  {c.name:24s} {s.name:16s} cloud IoU {_fmt(sc['cloud_vs_rest']['iou']['cloud'])}  {dt:6.2f} s")
        r["scenes"] = [s.name for s in runs]
        r["per_acquisition"] = {g: _acquisition(a) for g, a in by_acq.items()}
        r["pooled"] = {"cloud_vs_rest": metrics.summary(cm2, scene_mod.CLASSES_CLOUD)}
        if cm3.sum():
            r["pooled"]["three_class"] = metrics.summary(cm3, scene_mod.CLASSES_3)
            r["shadow_scenes"] = [s.name for s in runs if s.shadow_labelled]
        r["seconds"] = secs
        r["seconds_per_mpx"] = metrics.seconds_per_mpx(secs, px)
        per_region = {g.name: clear_mod.commission(to_mask(predict(fn, g.select(c.bands), chip, overlap, batch)))
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
           "chip": chip, "overlap": overlap, "models": results,
           "clear_regions": [{"name": g.name, "shape": list(g.data.shape[:2]), "bands": list(g.bands),
                              "level": g.level, "source": g.source} for g in clear_regions]}
    if out is not None and panels:
        doc["panels"] = [str(p) for p in _panels(scene_list, cands, masks, out / "panels")]
    return doc


def _acquisition(a: dict) -> dict:
    """Pooled scores of one acquisition: cloud IoU (cloud vs rest), shadow IoU where shadow is labelled."""
    out = {"level": a["level"], "scenes": a["scenes"],
           "cloud_iou": float(np.nan_to_num(metrics.iou(a["cm2"])[1])), "labelled_pixels": int(a["cm2"].sum())}
    if a["cm3"] is not None and a["cm3"].sum():
        out["shadow_iou"] = float(np.nan_to_num(metrics.iou(a["cm3"])[contract.SHADOW]))
    return out


def _teacher_for(c: Candidate, s) -> str:
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


def panel_rows(s, cands, masks) -> list[tuple[str, np.ndarray]]:
    """What a scene's panel shows after RGB and truth: one of our U-Nets, one baseline, one teacher variant.

    The widest variant the scene allows (6-band where it has B11 and B12); of several versions of one model
    the newest, the one the predictor serves."""
    shown = []
    widest_first = sorted(cands, key=lambda c: (-len(c.bands), -int(c.version) if str(c.version).isdigit() else 0))
    for kind in ("ours", "baseline"):
        for c in widest_first:
            if c.kind == kind and (c.name, s.name) in masks:
                shown.append((c.name, masks[(c.name, s.name)]))
                break
    for c in widest_first:  # the teacher variant for the scene's level, 6-band when the scene allows
        if c.kind == "peer" and c.level == s.level and not c.cloud_only and (c.name, s.name) in masks:
            shown.append((c.name, masks[(c.name, s.name)]))
            break
    return shown


def _panels(scene_list, cands, masks, out: Path) -> list[Path]:
    from cloudmask.evaluate import panels

    return [panels.panel(out / f"{s.name}.png", s.reflectance, s.bands, s.truth, panel_rows(s, cands, masks),
                         cloud_only_truth=not s.shadow_labelled, title=s.name) for s in scene_list]


def _pct(v) -> str:
    return f"{100 * v:.2f}"


def _fmt(v, nd=3) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def tables(doc: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, header, rows) tables: rendered with rich on the terminal and as Markdown in metrics.md."""
    scene_names = [s["name"] for s in doc["scenes"]]
    models = doc["models"]
    out = []

    rows = []
    for name, r in models.items():
        p = r["pooled"]["cloud_vs_rest"]
        rows.append([name, str(len(r["scenes"])), _fmt(p["iou"]["cloud"]), _fmt(p["f1"]["cloud"]),
                     _fmt(p["balanced_accuracy"]), f"{r['seconds_per_mpx']:.2f}"])
    out.append(("Cloud vs not-cloud (predicted shadow counts as not-cloud), pooled over the scenes each model can read",
                ["model", "scenes", "cloud IoU", "cloud F1", "bal. acc.", "s/Mpx"], rows))

    rows = [[name, *[_fmt(r["per_scene"][n]["cloud_vs_rest"]["iou"]["cloud"]) if n in r["per_scene"] else "n/a"
                     for n in scene_names]] for name, r in models.items()]
    out.append(("Cloud IoU per scene (n/a: the scene lacks the model's bands)", ["model", *scene_names], rows))

    shadow_rows = [(n, r) for n, r in models.items() if "three_class" in r["pooled"]]
    if shadow_rows:
        sc = ", ".join(shadow_rows[0][1]["shadow_scenes"])
        rows = []
        for name, r in shadow_rows:
            p = r["pooled"]["three_class"]
            rows.append([name, _fmt(p["iou"]["clear"]), _fmt(p["iou"]["cloud"]),
                         "n/a (cloud only)" if r["cloud_only"] else _fmt(p["iou"]["shadow"]), _fmt(p["mean_iou"]),
                         "n/a" if r["cloud_only"] else _fmt(p["f1"]["shadow"]), _fmt(p["balanced_accuracy"])])
        out.append((f"Three classes on the scenes with shadow labels ({sc}); those shadow labels are undocumented, "
                    "so read shadow IoU with care",
                    ["model", "clear IoU", "cloud IoU", "shadow IoU", "mean IoU", "shadow F1", "bal. acc."], rows))

    clear_rows = [(n, r["clear_ground"]) for n, r in models.items() if "clear_ground" in r]
    if clear_rows:
        regions = [g["name"] for g in doc.get("clear_regions", [])]
        rows = [[name, str(g["pooled"]["regions"]), _pct(g["pooled"]["cloud"]), _pct(g["pooled"]["shadow"]),
                 *[f"{_pct(g['per_region'][n]['cloud'])} / {_pct(g['per_region'][n]['shadow'])}"
                   if n in g["per_region"] else "n/a" for n in regions]] for name, g in clear_rows]
        out.append(("False alarms on held-out clear ground (no clouds there: every cloud or shadow pixel is wrong; "
                    "% of pixels, pooled, then cloud / shadow per region)",
                    ["model", "regions", "cloud %", "shadow %", *regions], rows))

    agree = [(n, r) for n, r in models.items() if any("agreement_with_teacher" in v for v in r["per_scene"].values())]
    if agree:
        rows = [[name, *[_fmt(r["per_scene"].get(n, {}).get("agreement_with_teacher", {}).get("agreement"))
                         for n in scene_names]] for name, r in agree]
        out.append(("Agreement with ukis-csmask (the U-Nets' teacher; same band count, the scene's level) on the same "
                    "pixels: agreement, NOT accuracy", ["model", *scene_names], rows))

    acqs = sorted({g for r in models.values() for g in r.get("per_acquisition", {})})
    if acqs:
        lv = {g: a["level"] for r in models.values() for g, a in r.get("per_acquisition", {}).items()}
        rows = [[name, *[(lambda a: "n/a" if a is None else _fmt(a["cloud_iou"]) + (
            f" / {_fmt(a['shadow_iou'])}" if "shadow_iou" in a and not r["cloud_only"] else ""))(
            r.get("per_acquisition", {}).get(g)) for g in acqs]] for name, r in models.items()]
        out.append(("Per acquisition (pooled over its scenes): cloud IoU, and shadow IoU after the slash where "
                    "labelled -- what the serving gate compares", ["model", *[f"{g} ({lv[g]})" for g in acqs]], rows))

    ho = doc.get("held_out_real") or {}
    if ho.get("models"):
        sources = sorted({k for r in ho["models"].values() for k in r["cloud_iou_vs_source"]})
        rows = [[name, str(r["acquisitions"]), _fmt(r["built_labels"]["cloud_iou"]),
                 "n/a" if r.get("level") is None and name.startswith("DL-") else _fmt(r["built_labels"]["shadow_iou"]),
                 *[_fmt(r["cloud_iou_vs_source"].get(k)) for k in sources]] for name, r in ho["models"].items()]
        out.append((f"Held-out real acquisitions ({ho['acquisitions']} dates of {', '.join(ho['sites'])}; never trained "
                    "on): IoU against the built labels, then cloud IoU against each source alone -- agreement, NOT "
                    "accuracy (ukis-csmask and baseline-6b are among the voters)",
                    ["model", "dates", "cloud IoU", "shadow IoU", *[f"cloud vs {k}" for k in sources]], rows))

    if doc.get("gate"):
        from cloudmask.evaluate import gate

        out.append(("Serving gate: which model answers which band set and level", ["variant", "level", "served", "why"],
                    gate.table(doc["gate"])))
    return out


def print_tables(doc: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=200)
    console.print(f"\n[bold]{doc['summary']}[/bold]")
    for title, header, rows in tables(doc):
        t = Table(title=title)
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            t.add_row(*row)
        console.print(t)


def markdown(doc: dict) -> str:
    lines = [doc["summary"], ""]
    for title, header, rows in tables(doc):
        lines += [f"**{title}**", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def load_scenes(dirs, scg_scale: float = scene_mod.SCG_SCALE) -> list:
    if dirs:
        return [scene_mod.load_dir(d) for d in dirs]
    return scene_mod.load_default(scg_scale=scg_scale)


def run(args: argparse.Namespace) -> int:
    scene_list = load_scenes(args.scene, args.scg_scale)
    keep = set(args.models.split(",")) if args.models else None
    cands = candidates(args.model_dir, keep, peers=not args.no_peers, dl_l8s2_uv=not args.no_dl_l8s2_uv)
    print(scene_mod.describe(scene_list))
    regions = []
    if not args.no_clear:
        from cloudmask.evaluate import clear

        regions = clear.held_out_regions()
        print(f"{len(regions)} held-out clear regions for false alarms: {', '.join(g.name for g in regions) or 'none found'}")
    doc = evaluate(scene_list, cands, chip=args.chip, overlap=args.overlap, batch=args.batch, out=args.out,
                   panels=not args.no_panels, clear_regions=regions)
    if not args.no_heldout:
        from cloudmask.evaluate import heldout

        print("held-out real acquisitions (built labels, agreement not accuracy):")
        doc["held_out_real"] = heldout.score(cands, chip=args.chip, overlap=args.overlap, batch=args.batch,
                                             cache=args.out / "label_cache", log=lambda *a: None)
    doc["command"] = "cloudmask evaluate " + shlex.join(args.argv)  # set by both entry points, as for `train`
    if args.gate:
        from cloudmask.evaluate import gate

        served = gate.served_versions(REPO / "models")
        decision = gate.decide(doc["models"], doc.get("held_out_real", {}), served)
        gate.write(args.gate, decision, doc["models"], doc.get("held_out_real", {}), doc["command"], served)
        doc["gate"] = decision
        print(f"wrote the serving gate's routes to {args.gate}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    (args.out / "metrics.md").write_text(f"`{doc['command']}`\n\n" + markdown(doc))
    print_tables(doc)
    if args.update_cards:
        from cloudmask.evaluate import cards

        for c in cands:
            if c.kind == "ours" and c.name in doc["models"] and c.path is not None:
                for f in cards.update(c.path, doc, c.name):
                    print(f"updated {f}")
    print(f"\nwrote {args.out / 'metrics.json'}, {args.out / 'metrics.md'}"
          + ("" if args.no_panels else f" and PNG panels in {args.out / 'panels'}"))
    return 0


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if np.isnan(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))
