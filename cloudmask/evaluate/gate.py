"""The serving gate: which model answers which band set and processing level, decided from measured metrics.

Rule (issue 10): for each band-set variant of the `cloudmask` family and each level, the served U-Net answers only
if it scores at least the spectral baseline of the same bands on EVERY labelled validation acquisition of that
level it can read -- cloud IoU, and shadow IoU where shadow is labelled. Where no human-labelled acquisition of that
level exists, the evidence is every human-labelled acquisition it can read (any level) plus the held-out real
acquisitions of that level with built labels (cloudmask.evaluate.heldout). If the U-Net fails any of them, or there
is no evidence at all, the baseline answers. "unknown" level: the U-Net only if it passed for every level.

`decide` is pure: metrics in, routes out. `cloudmask evaluate --gate` writes its result to cloudmask/routes.json
(read by cloudmask.contract.route in both images); tests/evaluate/test_gate.py re-derives the routes from the
evidence committed in that file, checks that the evidence is for the versions models/ serves, and re-measures
when the labelled scenes are present.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cloudmask import contract

# A tie is a pass (the same masks score the same), but a float wobble must not flip a decision.
TOLERANCE = 1e-6


def _baseline_of(variant: contract.ModelContract) -> contract.ModelContract:
    base = contract.choose("baseline", variant.bands)
    if base is None or base.bands != variant.bands:
        raise ValueError(f"no baseline with the bands of {variant.name}")
    return base


def _row(rows: dict, model: str, version: str | None = None) -> tuple[str, dict] | None:
    """The metrics row of `model` (at `version`, else the highest version scored)."""
    found = []
    for key, r in rows.items():
        name, _, ver = key.rpartition(" v")
        if name == model and (version is None or ver == str(version)):
            found.append((int(ver) if ver.isdigit() else -1, key, r))
    if not found:
        return None
    _, key, r = max(found)
    return key, r


def evidence(human: dict, heldout: dict, variant: str, baseline: str, level: str, version: str | None) -> list[dict]:
    """Acquisitions both the variant's served version and the baseline were scored on, with both scores."""
    got_u, got_b = _row(human, variant, version), _row(human, baseline)
    out = []
    if got_u and got_b:
        ua, ba = got_u[1].get("per_acquisition", {}), got_b[1].get("per_acquisition", {})
        same_level = [g for g in ua if g in ba and ua[g]["level"] == level]
        chosen = same_level or [g for g in ua if g in ba]
        for g in sorted(chosen):
            out.append({"acquisition": g, "level": ua[g]["level"], "labels": "human",
                        "model": {k: ua[g].get(k) for k in ("cloud_iou", "shadow_iou")},
                        "baseline": {k: ba[g].get(k) for k in ("cloud_iou", "shadow_iou")}})
        if same_level:
            return out
    hu = _row(heldout.get("models", {}), variant, version) if heldout else None
    hb = _row(heldout.get("models", {}), baseline) if heldout else None
    if hu and hb and level in heldout.get("levels", ()):
        for site in sorted(hu[1]["per_site"]):
            u, b = hu[1]["per_site"][site], hb[1]["per_site"].get(site)
            if b is None or u["level"] != level:
                continue
            out.append({"acquisition": site, "level": level, "labels": "built (held-out site)",
                        "model": {k: u.get(k) for k in ("cloud_iou", "shadow_iou")},
                        "baseline": {k: b.get(k) for k in ("cloud_iou", "shadow_iou")}})
    return out


def passes(ev: list[dict]) -> tuple[bool, list[str]]:
    """(passed, reasons it failed): the model must reach the baseline on every acquisition and score."""
    if not ev:
        return False, ["no acquisition to compare on"]
    fails = []
    for e in ev:
        for k in ("cloud_iou", "shadow_iou"):
            m, b = e["model"].get(k), e["baseline"].get(k)
            if m is None or b is None:
                continue
            if m < b - TOLERANCE:
                fails.append(f"{e['acquisition']} ({e['labels']}): {k} {m:.3f} < baseline {b:.3f}")
    return not fails, fails


def decide(human: dict, heldout: dict, served: dict[str, str]) -> dict:
    """human: evaluate's doc["models"] on the human-labelled scenes; heldout: heldout.score's doc; served: model
    name -> version that models/ serves. -> {"routes": ..., "decisions": ...} (what routes.json holds)."""
    routes, decisions = {}, {}
    for variant in contract.FAMILIES["cloudmask"]:
        base = _baseline_of(variant)
        version = served.get(variant.name)
        table, why = {}, {}
        for level in contract.LEVELS:
            ev = evidence(human, heldout, variant.name, base.name, level, version) if version else []
            ok, fails = passes(ev)
            table[level] = variant.name if ok else base.name
            why[level] = {"served": table[level], "candidate": f"{variant.name} v{version}" if version else None,
                          "passed": ok, "failures": fails, "evidence": ev}
        table[contract.UNKNOWN_LEVEL] = variant.name if all(why[lv]["passed"] for lv in contract.LEVELS) else base.name
        why[contract.UNKNOWN_LEVEL] = {"served": table[contract.UNKNOWN_LEVEL],
                                       "rule": "the U-Net only if it passed at every level"}
        routes[variant.name] = table
        decisions[variant.name] = why
    return {"routes": {"cloudmask": routes}, "decisions": decisions}


def served_versions(model_dir: Path) -> dict[str, str]:
    from cloudmask.savedmodel import discover

    return {m.contract.name: m.version for m in discover(model_dir)}


def write(path: Path, decision: dict, human: dict, heldout: dict, command: str, served: dict[str, str]) -> Path:
    """routes.json: the decision, and the rows of the served versions it was made from (older versions scored in
    the same run are left out: the file describes what serves)."""
    names = {f"{k} v{v}" for k, v in served.items()}
    human = {k: v for k, v in human.items() if k in names}
    if heldout:
        heldout = {**heldout, "models": {k: v for k, v in heldout.get("models", {}).items() if k in names}}
    doc = {"generated_by": command, "date": dt.date.today().isoformat(),
           "rule": __doc__.split("\n\n")[1].replace("\n", " "),
           **decision,
           # what decide() read, so a test can re-derive the routes without re-running any model
           "inputs": {"human": {k: {"per_acquisition": v.get("per_acquisition", {})} for k, v in human.items()
                                if v.get("kind") in ("ours", "baseline")},
                      "heldout": {**{k: v for k, v in heldout.items() if k != "models"},
                                  "models": {k: {"per_site": v["per_site"]} for k, v in heldout.get("models", {}).items()
                                             if v.get("kind") in ("ours", "baseline")}} if heldout else {}}}
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
    return Path(path)


def table(decision: dict) -> list[list[str]]:
    """Rows for the README / evaluate output: variant, level, served model, why."""
    rows = []
    for variant, per_level in decision["decisions"].items():
        for level in (*contract.LEVELS, contract.UNKNOWN_LEVEL):
            d = per_level[level]
            if level == contract.UNKNOWN_LEVEL:
                rows.append([variant, level, d["served"], d["rule"]])
                continue
            ev = "; ".join(f"{e['acquisition']} cloud {e['model']['cloud_iou']:.3f} vs {e['baseline']['cloud_iou']:.3f}"
                           + (f", shadow {e['model']['shadow_iou']:.3f} vs {e['baseline']['shadow_iou']:.3f}"
                              if e["model"].get("shadow_iou") is not None and e["baseline"].get("shadow_iou") is not None
                              else "")
                           for e in d["evidence"]) or "no evidence"
            rows.append([variant, level, d["served"], ("passed: " if d["passed"] else "failed: ") + ev])
    return rows
