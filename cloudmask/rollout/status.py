"""What `cloudmask rollout status` shows: the facts of an InferenceService's rollout (also its --json document),
and the same as text for a person. Presentation only; the decisions are decide.py's."""

from __future__ import annotations

from typing import Any

from cloudmask.rollout.decide import (PREVIOUS_URI_ANNOTATION, Obj, _condition_status, _get, phase, predictor_status,
                                      storage_uri)
from cloudmask.rollout.errors import RolloutError


def summarize(isvc: Obj) -> Obj:
    """The facts `cloudmask rollout status` prints; also its --json document."""
    meta = isvc.get("metadata") or {}
    pred = _get(isvc, "spec", "predictor") or {}
    st = predictor_status(isvc)
    try:
        uri = storage_uri(isvc)
    except RolloutError:
        uri = None
    annotations = pred.get("annotations") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "url": _get(isvc, "status", "url"),
        "ready": _condition_status(isvc, "Ready"),
        "phase": phase(isvc),
        "generation": meta.get("generation"),
        "observedGeneration": _get(isvc, "status", "observedGeneration"),
        "storageUri": uri,
        "canaryTrafficPercent": pred.get("canaryTrafficPercent"),
        "previousStorageUri": annotations.get(PREVIOUS_URI_ANNOTATION),
        "latestCreatedRevision": st.get("latestCreatedRevision"),
        "latestReadyRevision": st.get("latestReadyRevision"),
        "latestRolledoutRevision": st.get("latestRolledoutRevision"),
        "previousRolledoutRevision": st.get("previousRolledoutRevision"),
        "traffic": [
            {
                "revisionName": t.get("revisionName"),
                "percent": t.get("percent"),
                "latestRevision": t.get("latestRevision"),
                "tag": t.get("tag"),
            }
            for t in st.get("traffic") or []
        ],
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message")}
            for c in _get(isvc, "status", "conditions") or []
        ],
    }


def format_summary(summary: Obj) -> str:
    def show(value: Any) -> str:
        return "-" if value is None or value == "" else str(value)

    lines = [
        f"InferenceService {summary['namespace']}/{summary['name']}: {summary['phase']} (Ready={summary['ready']})",
        f"  url:                       {show(summary['url'])}",
        f"  storageUri (spec):         {show(summary['storageUri'])}",
        f"  canaryTrafficPercent:      {show(summary['canaryTrafficPercent'])}",
        f"  previous storageUri:       {show(summary['previousStorageUri'])}",
        f"  latestCreatedRevision:     {show(summary['latestCreatedRevision'])}",
        f"  latestReadyRevision:       {show(summary['latestReadyRevision'])}",
        f"  latestRolledoutRevision:   {show(summary['latestRolledoutRevision'])}",
        f"  previousRolledoutRevision: {show(summary['previousRolledoutRevision'])}",
        "  traffic:",
    ]
    if not summary["traffic"]:
        lines.append("    (none reported)")
    for t in summary["traffic"]:
        latest = "latest" if t["latestRevision"] else ""
        lines.append(f"    {show(t['percent']):>4}%  {show(t['revisionName'])}  tag={show(t['tag'])}  {latest}".rstrip())
    lines.append("  conditions:")
    if not summary["conditions"]:
        lines.append("    (none reported)")
    for c in summary["conditions"]:
        why = " ".join(x for x in (c["reason"], c["message"]) if x)
        lines.append(f"    {show(c['type']):<30} {show(c['status']):<8} {why}".rstrip())
    return "\n".join(lines)
