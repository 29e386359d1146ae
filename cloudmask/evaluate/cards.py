"""Write measured metrics into a model's card: the `## Measured metrics` section of MODEL_CARD.md and the
`metrics` key of model_card.json. Everything else in the card belongs to training and is left as it is."""

from __future__ import annotations

import json
from pathlib import Path

HEADING = "## Measured metrics"


def _same_band_count(doc: dict, name: str) -> list[str]:
    """This model first, then every other row that reads as many bands (baseline, peers): a like-for-like table."""
    models = doc["models"]
    nb = len(models[name]["bands"])
    return [name] + [n for n, r in models.items() if n != name and len(r["bands"]) == nb]


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def card_metrics(doc: dict, name: str) -> dict:
    """The JSON `metrics` of model row `name` (e.g. 'cloudmask-6b v1'), with its like-for-like comparison rows."""
    models = doc["models"]
    rows = {}
    for n in _same_band_count(doc, name):
        r = models[n]
        p = r["pooled"]["cloud_vs_rest"]
        row = {"kind": r["kind"], "scenes": r["scenes"], "cloud_iou": p["iou"]["cloud"], "cloud_f1": p["f1"]["cloud"],
               "balanced_accuracy": p["balanced_accuracy"], "seconds_per_mpx": r["seconds_per_mpx"],
               "cloud_iou_per_scene": {s: v["cloud_vs_rest"]["iou"]["cloud"] for s, v in r["per_scene"].items()}}
        if "three_class" in r["pooled"]:
            t = r["pooled"]["three_class"]
            row["three_class"] = {"scenes": r["shadow_scenes"], "iou": t["iou"], "mean_iou": t["mean_iou"],
                                  "balanced_accuracy": t["balanced_accuracy"]}
        if "clear_ground" in r:
            row["clear_ground"] = r["clear_ground"]
        agree = {s: v["agreement_with_teacher"] for s, v in r["per_scene"].items() if "agreement_with_teacher" in v}
        if agree:
            row["agreement_with_teacher"] = agree
        rows[n] = row
    peers = {n: r for n, r in rows.items() if r["kind"] == "peer"}
    best = max(peers, key=lambda n: rows[n]["cloud_iou"] or -1) if peers else None
    ours = rows[name]["cloud_iou"]
    return {
        "command": doc.get("command", ""),
        "scenes": doc["summary"],
        "scg_scale": doc.get("scg_scale"),
        "scoring": "cloud vs not-cloud on every scene the model can read (predicted shadow = not-cloud), pooled "
                   "confusion matrix; three classes only where labels have shadow (scg, undocumented labels); "
                   "agreement with ukis-csmask is agreement, not accuracy; see docs/EVALUATION.md",
        "rows": rows,
        "target_cloud_iou_vs_best_peer": None if best is None else {
            "best_peer": best, "best_peer_cloud_iou": rows[best]["cloud_iou"], "ours": ours,
            "met": bool(ours is not None and rows[best]["cloud_iou"] is not None and ours >= rows[best]["cloud_iou"]),
        },
    }


def card_markdown(doc: dict, name: str) -> str:
    m = card_metrics(doc, name)
    rows = m["rows"]
    scenes = rows[name]["scenes"]
    lines = [HEADING, "",
             f"Measured with `{m['command']}` (scoring explained in docs/EVALUATION.md). {m['scenes']}", "",
             f"This model reads {len(doc['models'][name]['bands'])} bands, so it is scored on {len(scenes)} "
             f"scene{'s' if len(scenes) != 1 else ''} ({', '.join(scenes)}), beside every row that reads the same bands.",
             "", "| model | cloud IoU | cloud F1 | bal. acc. | " + " | ".join(f"cloud IoU {s}" for s in scenes)
             + " | s/Mpx |", "|---|" + "---:|" * (4 + len(scenes))]
    for n, r in rows.items():
        per = " | ".join(_f(r["cloud_iou_per_scene"].get(s)) for s in scenes)
        lines.append(f"| {n} | {_f(r['cloud_iou'])} | {_f(r['cloud_f1'])} | {_f(r['balanced_accuracy'])} | {per} | "
                     f"{r['seconds_per_mpx']:.2f} |")
    three = [(n, r) for n, r in rows.items() if "three_class" in r]
    if three:
        sc = ", ".join(three[0][1]["three_class"]["scenes"])
        lines += ["", f"Three classes on {sc} (its shadow labels are undocumented: read shadow IoU with care):", "",
                  "| model | clear IoU | cloud IoU | shadow IoU | mean IoU | bal. acc. |", "|---|---:|---:|---:|---:|---:|"]
        for n, r in three:
            t = r["three_class"]
            shadow = "n/a (cloud only)" if doc["models"][n]["cloud_only"] else _f(t["iou"]["shadow"])
            lines.append(f"| {n} | {_f(t['iou']['clear'])} | {_f(t['iou']['cloud'])} | {shadow} | "
                         f"{_f(t['mean_iou'])} | {_f(t['balanced_accuracy'])} |")
    clear = [(n, r["clear_ground"]) for n, r in rows.items() if "clear_ground" in r]
    if clear:
        regions = list(clear[0][1]["per_region"])
        lines += ["", "False alarms on held-out clear ground (% of pixels called cloud / shadow where there is no cloud; "
                  f"regions: {', '.join(regions)}; cloudmask.evaluate.clear):", "",
                  "| model | cloud % | shadow % |", "|---|---:|---:|"]
        for n, g in clear:
            lines.append(f"| {n} | {100 * g['pooled']['cloud']:.2f} | {100 * g['pooled']['shadow']:.2f} |")
    agree = rows[name].get("agreement_with_teacher")
    if agree:
        lines += ["", "Agreement with ukis-csmask, the teacher of part of the training labels (agreement, not accuracy): "
                  + ", ".join(f"{s} {_f(a['agreement'])} ({a['teacher']})" for s, a in agree.items()) + "."]
    t = m["target_cloud_iou_vs_best_peer"]
    if t:
        verdict = "met" if t["met"] else "NOT met"
        lines += ["", f"Target (cloud IoU at least the best peer's on the same scenes): {verdict}: "
                  f"{_f(t['ours'])} vs {t['best_peer']} {_f(t['best_peer_cloud_iou'])}."]
    lines += ["", "s/Mpx: wall time of chip, predict, stitch on 2 shared CPU cores while other work ran; compare "
              "within the table only. The 512-chip latency target is measured by `make bench`.", ""]
    return "\n".join(lines)


def update(model_dir: Path, doc: dict, name: str) -> list[Path]:
    """Replace the metrics section of `model_dir`'s MODEL_CARD.md (from HEADING to the next `## ` heading or the
    end) and the `metrics` key of its model_card.json. Returns the files written."""
    written = []
    md_path = Path(model_dir) / "MODEL_CARD.md"
    if md_path.is_file():
        text = md_path.read_text()
        start = text.find(HEADING)
        if start < 0:
            new = text.rstrip("\n") + "\n\n" + card_markdown(doc, name)
        else:
            nxt = text.find("\n## ", start + len(HEADING))
            rest = text[nxt + 1:] if nxt >= 0 else ""
            new = text[:start] + card_markdown(doc, name) + ("\n" + rest if rest else "")  # blank line before the next heading
        md_path.write_text(new)
        written.append(md_path)
    js_path = Path(model_dir) / "model_card.json"
    if js_path.is_file():
        card = json.loads(js_path.read_text())
        card["metrics"] = card_metrics(doc, name)
        js_path.write_text(json.dumps(card, indent=2) + "\n")
        written.append(js_path)
    return written
