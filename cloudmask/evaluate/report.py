"""The report of `cloudmask evaluate`: the metrics document as tables, on the terminal (rich) and as Markdown
(metrics.md), and as JSON (metrics.json)."""

from __future__ import annotations

import numpy as np


def pct(v) -> str:
    return f"{100 * v:.2f}"


def fmt(v, nd=3) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def tables(doc: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, header, rows) tables: rendered with rich on the terminal and as Markdown in metrics.md."""
    scene_names = [s["name"] for s in doc["scenes"]]
    models = doc["models"]
    out = []

    rows = []
    for name, r in models.items():
        p = r["pooled"]["cloud_vs_rest"]
        rows.append([name, str(len(r["scenes"])), fmt(p["iou"]["cloud"]), fmt(p["f1"]["cloud"]),
                     fmt(p["balanced_accuracy"]), f"{r['seconds_per_mpx']:.2f}"])
    out.append(("Cloud vs not-cloud (predicted shadow counts as not-cloud), pooled over the scenes each model can read",
                ["model", "scenes", "cloud IoU", "cloud F1", "bal. acc.", "s/Mpx"], rows))

    rows = [[name, *[fmt(r["per_scene"][n]["cloud_vs_rest"]["iou"]["cloud"]) if n in r["per_scene"] else "n/a"
                     for n in scene_names]] for name, r in models.items()]
    out.append(("Cloud IoU per scene (n/a: the scene lacks the model's bands)", ["model", *scene_names], rows))

    shadow_rows = [(n, r) for n, r in models.items() if "three_class" in r["pooled"]]
    if shadow_rows:
        sc = ", ".join(shadow_rows[0][1]["shadow_scenes"])
        rows = []
        for name, r in shadow_rows:
            p = r["pooled"]["three_class"]
            rows.append([name, fmt(p["iou"]["clear"]), fmt(p["iou"]["cloud"]),
                         "n/a (cloud only)" if r["cloud_only"] else fmt(p["iou"]["shadow"]), fmt(p["mean_iou"]),
                         "n/a" if r["cloud_only"] else fmt(p["f1"]["shadow"]), fmt(p["balanced_accuracy"])])
        out.append((f"Three classes on the scenes with shadow labels ({sc}); those shadow labels are undocumented, "
                    "so read shadow IoU with care",
                    ["model", "clear IoU", "cloud IoU", "shadow IoU", "mean IoU", "shadow F1", "bal. acc."], rows))

    clear_rows = [(n, r["clear_ground"]) for n, r in models.items() if "clear_ground" in r]
    if clear_rows:
        regions = [g["name"] for g in doc.get("clear_regions", [])]
        rows = [[name, str(g["pooled"]["regions"]), pct(g["pooled"]["cloud"]), pct(g["pooled"]["shadow"]),
                 *[f"{pct(g['per_region'][n]['cloud'])} / {pct(g['per_region'][n]['shadow'])}"
                   if n in g["per_region"] else "n/a" for n in regions]] for name, g in clear_rows]
        out.append(("False alarms on held-out clear ground (no clouds there: every cloud or shadow pixel is wrong; "
                    "% of pixels, pooled, then cloud / shadow per region)",
                    ["model", "regions", "cloud %", "shadow %", *regions], rows))

    agree = [(n, r) for n, r in models.items() if any("agreement_with_teacher" in v for v in r["per_scene"].values())]
    if agree:
        rows = [[name, *[fmt(r["per_scene"].get(n, {}).get("agreement_with_teacher", {}).get("agreement"))
                         for n in scene_names]] for name, r in agree]
        out.append(("Agreement with ukis-csmask (the U-Nets' teacher; same band count, the scene's level) on the same "
                    "pixels: agreement, NOT accuracy", ["model", *scene_names], rows))

    acqs = sorted({g for r in models.values() for g in r.get("per_acquisition", {})})
    if acqs:
        lv = {g: a["level"] for r in models.values() for g, a in r.get("per_acquisition", {}).items()}
        rows = [[name, *[(lambda a: "n/a" if a is None else fmt(a["cloud_iou"]) + (
            f" / {fmt(a['shadow_iou'])}" if "shadow_iou" in a and not r["cloud_only"] else ""))(
            r.get("per_acquisition", {}).get(g)) for g in acqs]] for name, r in models.items()]
        out.append(("Per acquisition (pooled over its scenes): cloud IoU, and shadow IoU after the slash where "
                    "labelled -- what the serving gate compares", ["model", *[f"{g} ({lv[g]})" for g in acqs]], rows))

    ho = doc.get("held_out_real") or {}
    if ho.get("models"):
        sources = sorted({k for r in ho["models"].values() for k in r["cloud_iou_vs_source"]})
        sites = ho["sites"]
        seen = {g: r["per_site"][g] for r in ho["models"].values() for g in r["per_site"]}  # any model with the site
        head = [f"{g} ({seen[g]['level']}, {len(seen[g]['scenes'])} scenes)" if g in seen else g for g in sites]

        def cell(r, g):
            a = r["per_site"].get(g)
            if a is None:
                return "n/a"
            return fmt(a["cloud_iou"]) + ("" if a.get("shadow_iou") is None else " / " + fmt(a["shadow_iou"]))

        out.append((f"Held-out real acquisitions ({ho['acquisitions']} scenes of {len(sites)} sites; never trained "
                    "on): cloud IoU / shadow IoU against the built labels, per site -- agreement, NOT accuracy "
                    "(ukis-csmask and baseline-6b are among the voters)",
                    ["model", *head], [[name, *[cell(r, g) for g in sites]] for name, r in ho["models"].items()]))
        rows = [[name, fmt(r["built_labels"]["cloud_iou"]), *[fmt(r["cloud_iou_vs_source"].get(k)) for k in sources]]
                for name, r in ho["models"].items()]
        out.append(("Held-out real acquisitions, all sites pooled: cloud IoU against the built labels, then against "
                    "each source alone (each source speaks only where it has data: sen2cor-scl and multi-temporal on "
                    "worldcereal, l8-bqa and b9-cirrus on the Landsat-8 scene)",
                    ["model", "built labels", *[f"vs {k}" for k in sources]], rows))

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


def json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if np.isnan(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))
