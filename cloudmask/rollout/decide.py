"""Canary rollout decisions on an InferenceService object: plain dicts in, patches and verdicts out.

No I/O here. `api.py` reads and patches the object; this module says what to send and whether
the state it reads back is the one asked for; `status.py` presents it. The semantics follow KServe (Serverless/Knative mode):

- `spec.predictor.canaryTrafficPercent: P` sends P% to the latest revision and 100-P% to
  `status.components.predictor.latestRolledoutRevision` (tag `prev`).
- Removing the field promotes: the latest revision gets 100% and, once it carries 100%, KServe
  records it as `latestRolledoutRevision` (the old one moves to `previousRolledoutRevision`).
- `canaryTrafficPercent: 0` pins all traffic to the rolled-out revision; if the latest revision was
  already promoted, KServe moves `latestRolledoutRevision` back to `previousRolledoutRevision`.
  (kserve/website docs/modelserving/v1beta1/rollout/canary-example.md; KServe's
  pkg/apis/serving/v1beta1/inference_service_status.go PropagateStatus.)

Where the model URI lives: cloudmask's predictor is a custom container, for which KServe's
storage initializer reads the `STORAGE_URI` env var of the container named `kserve-container`
(CustomPredictor.GetStorageUri); a predictor with a `model:` block uses `model.storageUri`.

Bookkeeping: `start` records the URI it replaces in the predictor annotation
`cloudmask.io/previous-storage-uri` so `rollback` can put it back into the spec. It goes on
`spec.predictor.annotations`, not on the InferenceService's metadata, because KServe copies
metadata annotations into every component's revision template: a metadata annotation would roll
the transformer too, while the predictor's own annotation rides along in the revision `start`
creates anyway. `promote` and the pinning step of `rollback` never touch the pod template, since
a new revision there would defeat KServe's rolled-out-revision tracking.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from cloudmask.rollout.errors import ExitCode, RolloutError

KSERVE_CONTAINER = "kserve-container"
STORAGE_URI_ENV = "STORAGE_URI"
PREVIOUS_URI_ANNOTATION = "cloudmask.io/previous-storage-uri"
# Annotation value for "the spec named no storage URI": the image's bundled model served.
BUNDLED_MODEL = ""

PENDING, DONE, FAILED = "pending", "done", "failed"

Obj = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether a polled object has reached the state a command waits for."""

    state: str  # PENDING | DONE | FAILED
    message: str


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a command sends and what it then waits for.

    patch: a JSON merge patch (RFC 7386) for the InferenceService, or None when nothing changes.
    wait: "started" (new revision Ready), "promoted" (revision rolled out at 100%),
          "pinned" (all traffic on `revision`).
    revision: the revision the wait is about, where known before patching.
    restore_after_pin: rollback of an already promoted revision: pin first, then plan again to
          restore the previous storage URI once KServe has moved the rolled-out revision back.
    baseline_revision, new_revision, percent: for start, the latestCreatedRevision before the
          patch, whether the patch changes the pod template (so a new revision must appear), and
          the canaryTrafficPercent asked for.

    Progress is judged from revisions and traffic, not from status.observedGeneration: KServe
    copies that field from the Knative Service it owns, whose generation is not the
    InferenceService's.
    """

    patch: Obj | None
    wait: str
    revision: str | None = None
    restore_after_pin: bool = False
    notes: tuple[str, ...] = ()
    baseline_revision: str | None = None
    new_revision: bool = False
    percent: int | None = None


# --- reading the object -------------------------------------------------------------------------


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def predictor_spec(isvc: Obj) -> Obj:
    pred = _get(isvc, "spec", "predictor")
    if not isinstance(pred, dict):
        raise RolloutError(ExitCode.NOT_POSSIBLE, f"{_ref(isvc)} has no spec.predictor")
    return pred


def predictor_status(isvc: Obj) -> Obj:
    return _get(isvc, "status", "components", "predictor") or {}


def condition(isvc: Obj, ctype: str) -> Obj | None:
    for cond in _get(isvc, "status", "conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def _condition_status(isvc: Obj, ctype: str) -> str:
    cond = condition(isvc, ctype)
    return str(cond.get("status", "Unknown")) if cond else "Unknown"


def traffic_by_revision(isvc: Obj) -> dict[str, int]:
    """Percent per revision name; a revision can appear twice (as `latest` and as `prev`)."""
    totals: dict[str, int] = {}
    for target in predictor_status(isvc).get("traffic") or []:
        name = target.get("revisionName")
        if name:
            totals[name] = totals.get(name, 0) + int(target.get("percent") or 0)
    return totals


def _latest_percent(isvc: Obj) -> int | None:
    targets = [t for t in predictor_status(isvc).get("traffic") or [] if t.get("latestRevision")]
    if not targets:
        return None
    return sum(int(t.get("percent") or 0) for t in targets)


def _ref(isvc: Obj) -> str:
    meta = isvc.get("metadata") or {}
    return f"InferenceService {meta.get('namespace', '?')}/{meta.get('name', '?')}"


# --- where the model URI lives ------------------------------------------------------------------


def storage_location(pred: Obj) -> tuple[str, int]:
    """("model", -1) for a model-format predictor, ("containers", i) for a custom container."""
    if pred.get("storageUris"):
        raise RolloutError(
            ExitCode.NOT_POSSIBLE,
            "spec.predictor.storageUris is set; this tool manages a single storage URI "
            "(spec.predictor.model.storageUri or the STORAGE_URI env of kserve-container)",
        )
    if isinstance(pred.get("model"), dict):
        return ("model", -1)
    containers = pred.get("containers") or []
    for i, container in enumerate(containers):
        if container.get("name") == KSERVE_CONTAINER:
            return ("containers", i)
    if len(containers) == 1:
        # KServe's defaulter names a lone custom container kserve-container.
        return ("containers", 0)
    raise RolloutError(
        ExitCode.NOT_POSSIBLE,
        "cannot tell where the predictor's model URI lives: spec.predictor has neither a model "
        f"block nor a container named {KSERVE_CONTAINER}",
    )


def storage_uri(isvc: Obj) -> str | None:
    pred = predictor_spec(isvc)
    kind, index = storage_location(pred)
    if kind == "model":
        return pred["model"].get("storageUri")
    for env in pred["containers"][index].get("env") or []:
        if env.get("name") == STORAGE_URI_ENV:
            return env.get("value")
    return None


def _storage_fragment(pred: Obj, uri: str | None) -> Obj:
    """The spec.predictor part of a merge patch that sets (or, for None, removes) the model URI."""
    kind, index = storage_location(pred)
    if kind == "model":
        return {"model": {"storageUri": uri}}
    # A merge patch replaces lists whole, so the full containers list goes out; the
    # resourceVersion in the same patch makes the API server refuse it if someone else edited it.
    containers = copy.deepcopy(pred["containers"])
    env = containers[index].setdefault("env", [])
    at = next((i for i, e in enumerate(env) if e.get("name") == STORAGE_URI_ENV), None)
    if uri is None:
        if at is not None:
            del env[at]
    elif at is None:
        env.append({"name": STORAGE_URI_ENV, "value": uri})
    else:
        env[at] = {"name": STORAGE_URI_ENV, "value": uri}  # drops a valueFrom, if any
    return {"containers": containers}


def _patch(isvc: Obj, predictor_fragment: Obj) -> Obj:
    body: Obj = {"spec": {"predictor": predictor_fragment}}
    rv = _get(isvc, "metadata", "resourceVersion")
    if rv:
        # Optimistic concurrency: a concurrent writer makes this a 409 instead of a lost update.
        body = {"metadata": {"resourceVersion": rv}, **body}
    return body


# --- plans --------------------------------------------------------------------------------------


def plan_start(isvc: Obj, model_uri: str, percent: int) -> Plan:
    if not model_uri:
        raise RolloutError(ExitCode.USAGE, "--model-uri must not be empty")
    if not 0 <= percent <= 100:
        raise RolloutError(ExitCode.USAGE, f"--percent must be within 0..100, got {percent}")
    pred = predictor_spec(isvc)
    current = storage_uri(isvc)
    fragment: Obj = {"canaryTrafficPercent": percent}
    fragment.update(_storage_fragment(pred, model_uri))
    annotations = pred.get("annotations") or {}
    # A rollout is still open when canaryTrafficPercent is set and we recorded a previous URI:
    # keep that record, it names the model that last served 100%, not the unpromoted canary.
    open_rollout = pred.get("canaryTrafficPercent") is not None and PREVIOUS_URI_ANNOTATION in annotations
    notes: list[str] = []
    if not open_rollout and current != model_uri:
        fragment["annotations"] = {PREVIOUS_URI_ANNOTATION: current if current is not None else BUNDLED_MODEL}
    elif open_rollout:
        notes.append(
            f"a rollout is open; keeping the recorded previous storage URI "
            f"{annotations[PREVIOUS_URI_ANNOTATION] or '(bundled model)'}"
        )
    if current == model_uri:
        notes.append(f"the predictor already names {model_uri}; only the traffic split changes")
    return Plan(
        patch=_patch(isvc, fragment),
        wait="started",
        notes=tuple(notes),
        baseline_revision=predictor_status(isvc).get("latestCreatedRevision"),
        # A different model URI changes the pod template, so Knative must create a revision; the
        # same URI (a re-run, or a new percent only) changes just the traffic split.
        new_revision=current != model_uri,
        percent=percent,
    )


def plan_promote(isvc: Obj) -> Plan:
    pred = predictor_spec(isvc)
    st = predictor_status(isvc)
    created, ready = st.get("latestCreatedRevision"), st.get("latestReadyRevision")
    rolled = st.get("latestRolledoutRevision")
    if not created:
        raise RolloutError(ExitCode.NOT_POSSIBLE, f"{_ref(isvc)} reports no predictor revision yet")
    if _condition_status(isvc, "PredictorConfigurationReady") == "False" or created != ready:
        raise RolloutError(
            ExitCode.NOT_POSSIBLE,
            f"latest revision {created} is not Ready (latest ready: {ready or 'none'}); refusing to "
            "promote. Wait for it, or run `cloudmask rollout rollback`.",
        )
    if pred.get("canaryTrafficPercent") is None and rolled == created:
        return Plan(patch=None, wait="promoted", revision=created, notes=(f"{created} is already promoted",))
    # Removing the field (JSON null in a merge patch) is KServe's documented promotion.
    return Plan(patch=_patch(isvc, {"canaryTrafficPercent": None}), wait="promoted", revision=created)


def plan_rollback(isvc: Obj) -> Plan:
    pred = predictor_spec(isvc)
    st = predictor_status(isvc)
    created = st.get("latestCreatedRevision")
    rolled = st.get("latestRolledoutRevision")
    previous = st.get("previousRolledoutRevision")
    if not rolled:
        raise RolloutError(
            ExitCode.NOT_POSSIBLE,
            f"{_ref(isvc)} has no status.components.predictor.latestRolledoutRevision; canary "
            "rollout needs KServe's Serverless (Knative) deployment mode and one completed rollout",
        )
    if created and created != rolled:
        # A canary is in flight (or its revision failed): pin traffic to the rolled-out revision
        # and put the previous model back into the spec, so a later promote cannot revive the
        # rejected one. The restored spec makes a new revision, which stays at 0%.
        fragment: Obj = {}
        notes: list[str] = []
        if pred.get("canaryTrafficPercent") != 0:
            fragment["canaryTrafficPercent"] = 0
        annotations = pred.get("annotations") or {}
        current = storage_uri(isvc)
        if PREVIOUS_URI_ANNOTATION in annotations:
            previous_uri = annotations[PREVIOUS_URI_ANNOTATION] or None
            if previous_uri != current:
                fragment.update(_storage_fragment(pred, previous_uri))
                notes.append(f"restoring storage URI {previous_uri or '(bundled model)'} (was {current})")
        else:
            notes.append(
                f"previous storage URI unknown (no {PREVIOUS_URI_ANNOTATION} annotation on the "
                f"predictor); the spec still names {current}, so a later promote would serve it again"
            )
        patch = _patch(isvc, fragment) if fragment else None
        if patch is None:
            notes.append("already rolled back in the spec; checking that traffic is pinned")
        return Plan(patch=patch, wait="pinned", revision=rolled, notes=tuple(notes))
    # The latest revision is fully rolled out: pin first, without touching the pod template.
    if not previous:
        raise RolloutError(
            ExitCode.NOT_POSSIBLE,
            f"{rolled} is the only revision KServe has rolled out (no previousRolledoutRevision); "
            "nothing to roll back to",
        )
    return Plan(
        patch=_patch(isvc, {"canaryTrafficPercent": 0}),
        wait="pinned",
        revision=previous,
        restore_after_pin=True,
        notes=(f"{rolled} was already promoted; pinning traffic back to {previous}",),
    )


# --- verdicts while polling ---------------------------------------------------------------------


def _failed_config(isvc: Obj) -> Verdict | None:
    cond = condition(isvc, "PredictorConfigurationReady")
    if cond and cond.get("status") == "False":
        detail = ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x)
        created = predictor_status(isvc).get("latestCreatedRevision") or "the latest revision"
        return Verdict(FAILED, f"{created} failed ({detail or 'PredictorConfigurationReady=False'})")
    return None


def check_started(isvc: Obj, plan: Plan) -> Verdict:
    """The revision made from our patch is Ready and carries the asked-for share of traffic."""
    st = predictor_status(isvc)
    created, ready = st.get("latestCreatedRevision"), st.get("latestReadyRevision")
    if plan.new_revision and (not created or created == plan.baseline_revision):
        return Verdict(PENDING, f"waiting for KServe to create the new revision (latest created: {created or 'none'})")
    failed = _failed_config(isvc)
    if failed:
        return failed
    if not created:
        return Verdict(PENDING, "no predictor revision created yet")
    if created != ready:
        return Verdict(PENDING, f"revision {created} not ready yet (latest ready: {ready or 'none'})")
    ready_status = _condition_status(isvc, "Ready")
    if ready_status != "True":
        cond = condition(isvc, "Ready") or {}
        why = ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x)
        return Verdict(PENDING, f"revision {created} ready, InferenceService Ready={ready_status} {why}".rstrip())
    # With a rolled-out revision to split against, KServe gives the latest revision the percent;
    # without one (the first rollout) it gets everything.
    expected = plan.percent if st.get("latestRolledoutRevision") else 100
    latest = [t for t in st.get("traffic") or [] if t.get("latestRevision")]
    if not latest or any(t.get("revisionName") != created for t in latest) or _latest_percent(isvc) != expected:
        return Verdict(PENDING, f"waiting for {expected}% on {created} (traffic {format_traffic(isvc)})")
    return Verdict(DONE, f"revision {created} is Ready; traffic {format_traffic(isvc)}")


def check_promoted(isvc: Obj, plan: Plan) -> Verdict:
    revision = plan.revision
    rolled = predictor_status(isvc).get("latestRolledoutRevision")
    share = traffic_by_revision(isvc).get(revision or "", 0)
    if rolled != revision or share != 100:
        return Verdict(PENDING, f"waiting for {revision} to carry 100% (traffic {format_traffic(isvc)})")
    if _condition_status(isvc, "Ready") != "True":
        return Verdict(PENDING, f"{revision} carries 100%, waiting for Ready=True")
    return Verdict(DONE, f"{revision} promoted: traffic {format_traffic(isvc)}")


def check_pinned(isvc: Obj, plan: Plan) -> Verdict:
    """All traffic on the rolled-out revision, with the latest revision's target at 0%, which is
    how KServe renders canaryTrafficPercent: 0 (a failed canary's 10% that Knative resolves to the
    old revision does not count as pinned yet)."""
    revision = plan.revision
    share = traffic_by_revision(isvc).get(revision or "", 0)
    rolled = predictor_status(isvc).get("latestRolledoutRevision")
    if rolled != revision or share != 100 or _latest_percent(isvc) not in (0, None):
        return Verdict(PENDING, f"waiting for all traffic on {revision} (traffic {format_traffic(isvc)})")
    return Verdict(DONE, f"traffic pinned to {revision}: {format_traffic(isvc)}")


def check(plan: Plan, isvc: Obj) -> Verdict:
    waits = {"started": check_started, "promoted": check_promoted, "pinned": check_pinned}
    return waits[plan.wait](isvc, plan)


# --- status -------------------------------------------------------------------------------------


def phase(isvc: Obj) -> str:
    """One word for where the rollout stands: stable, canary, rolled-back, progressing, failed, unknown."""
    st = predictor_status(isvc)
    if not st:
        return "unknown"
    if _failed_config(isvc):
        return "failed"
    created, ready = st.get("latestCreatedRevision"), st.get("latestReadyRevision")
    rolled = st.get("latestRolledoutRevision")
    if created and created != ready:
        return "progressing"
    if not rolled or rolled == created:
        return "stable"
    if _latest_percent(isvc) == 0:
        return "rolled-back"
    return "canary"


def format_traffic(isvc: Obj) -> str:
    parts = []
    for t in predictor_status(isvc).get("traffic") or []:
        label = t.get("revisionName") or "?"
        if t.get("tag"):
            label += f" [{t['tag']}]"
        if t.get("latestRevision"):
            label += " (latest)"
        parts.append(f"{t.get('percent', 0)}% {label}")
    return ", ".join(parts) or "none reported"
