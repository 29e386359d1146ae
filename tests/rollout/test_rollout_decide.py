"""Rollout decisions on InferenceService objects shaped as KServe documents them.

The status fixtures follow kserve/website docs/modelserving/v1beta1/rollout/canary-example.md:
its `kubectl get isvc` tables print the CRD's printer columns, which are jsonpaths into
status.components.predictor.traffic (PREV = traffic[tag=prev].percent, LATEST =
traffic[latestRevision=true].percent, PREVROLLEDOUTREVISION / LATESTREADYREVISION = their
revisionName), and its tag-routing section prints a whole status.components.predictor block.
latestRolledoutRevision / previousRolledoutRevision are filled in as KServe's
InferenceServiceStatus.PropagateStatus sets them. The spec is cloudmask's: a custom transformer
and a custom predictor container whose model comes from the STORAGE_URI env var.

Where ../shared is present, every fixture and every patched object is also validated against the
real InferenceService CRD schema with unknown fields rejected.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from cloudmask.rollout import decide, status
from cloudmask.rollout.errors import ExitCode, RolloutError

REV1 = "cloudmask-predictor-00001"
REV2 = "cloudmask-predictor-00002"
REV3 = "cloudmask-predictor-00003"
URI1 = "gs://cloudmask-models/models/1"
URI2 = "gs://cloudmask-models/models/2"
PREV = decide.PREVIOUS_URI_ANNOTATION


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch, as the API server applies application/merge-patch+json."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def conditions(ready="True", config="True", reason=None, message=None):
    conds = []
    for ctype in ("IngressReady", "LatestDeploymentReady", "PredictorConfigurationReady", "PredictorReady",
                  "PredictorRouteReady", "Ready", "RoutesReady", "TransformerConfigurationReady",
                  "TransformerReady", "TransformerRouteReady"):
        status = config if ctype in ("PredictorConfigurationReady", "LatestDeploymentReady") else "True"
        if ctype in ("Ready", "PredictorReady"):
            status = ready
        cond = {"type": ctype, "status": status, "lastTransitionTime": "2026-11-26T05:00:00Z"}
        if status != "True":
            cond.update({k: v for k, v in (("reason", reason), ("message", message)) if v})
        conds.append(cond)
    return conds


def component(created, ready, rolled, previous, traffic):
    comp = {
        "latestCreatedRevision": created,
        "latestReadyRevision": ready,
        "latestRolledoutRevision": rolled,
        "traffic": traffic,
        "url": "http://cloudmask-predictor.models.example.com",
        "address": {"url": "http://cloudmask-predictor.models.svc.cluster.local"},
    }
    if previous:
        comp["previousRolledoutRevision"] = previous
    return comp


def isvc(*, uri=URI1, canary=None, annotations=None, generation=1, observed=None, comp=None, conds=None):
    env = [{"name": "PROTOCOL", "value": "v2"}]
    if uri is not None:
        env.insert(0, {"name": "STORAGE_URI", "value": uri})
    predictor = {
        "minReplicas": 1,
        # as kserve/base sets them; our annotation must merge in beside them
        "annotations": {"autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                        "autoscaling.knative.dev/scale-down-delay": "2m"},
        "containers": [{
            "name": "kserve-container",
            "image": "europe-docker.pkg.dev/proj/cloudmask/predictor:3f2c1a0",
            "args": ["--model_dir", "/mnt/models", "--http_port", "8080", "--grpc_port", "8081"],
            "env": env,
            "ports": [{"name": "h2c", "containerPort": 8081, "protocol": "TCP"}],
        }],
    }
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    if annotations is not None:
        predictor["annotations"].update(annotations)
    obj = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "cloudmask", "namespace": "models", "generation": generation, "resourceVersion": "4711"},
        "spec": {
            "predictor": predictor,
            "transformer": {"containers": [{
                "name": "kserve-container",
                "image": "europe-docker.pkg.dev/proj/cloudmask/transformer:3f2c1a0",
                "args": ["--predictor_protocol", "grpc-v2"],
            }]},
        },
    }
    if comp is not None:
        obj["status"] = {
            "observedGeneration": generation if observed is None else observed,
            "url": "http://cloudmask.models.example.com",
            "components": {"predictor": comp},
            "conditions": conds if conds is not None else conditions(),
        }
    return obj


# --- the documented states ----------------------------------------------------------------------


def first_rollout():
    """canary-example.md, "Create the InferenceService": LATEST 100, LATESTREADYREVISION ...00001."""
    return isvc(comp=component(REV1, REV1, REV1, None,
                               [{"latestRevision": True, "percent": 100, "revisionName": REV1}]))


def canary_10():
    """canary-example.md after `canaryTrafficPercent: 10` with a new storageUri:
    PREV 90, LATEST 10, PREVROLLEDOUTREVISION ...00001, LATESTREADYREVISION ...00002."""
    return isvc(uri=URI2, canary=10, annotations={PREV: URI1}, generation=2,
                comp=component(REV2, REV2, REV1, None, [
                    {"latestRevision": True, "percent": 10, "revisionName": REV2},
                    {"latestRevision": False, "percent": 90, "revisionName": REV1, "tag": "prev"},
                ]))


def canary_tagged():
    """canary-example.md, "Route traffic using a tag": the status.components.predictor block it prints
    (names and URLs verbatim)."""
    comp = {
        "address": {"url": "http://sklearn-iris-predictor-default.kserve-test.svc.cluster.local"},
        "latestCreatedRevision": "sklearn-iris-predictor-default-00003",
        "latestReadyRevision": "sklearn-iris-predictor-default-00003",
        "latestRolledoutRevision": "sklearn-iris-predictor-default-00001",
        "previousRolledoutRevision": "sklearn-iris-predictor-default-00001",
        "traffic": [
            {"latestRevision": True, "percent": 10, "revisionName": "sklearn-iris-predictor-default-00003",
             "tag": "latest", "url": "http://latest-sklearn-iris-predictor-default.kserve-test.example.com"},
            {"latestRevision": False, "percent": 90, "revisionName": "sklearn-iris-predictor-default-00001",
             "tag": "prev", "url": "http://prev-sklearn-iris-predictor-default.kserve-test.example.com"},
        ],
        "url": "http://sklearn-iris-predictor-default.kserve-test.example.com",
    }
    return isvc(uri=URI2, canary=10, annotations={PREV: URI1}, generation=3, comp=comp)


def promoted():
    """canary-example.md after removing canaryTrafficPercent: LATEST 100, LATESTREADYREVISION ...00002
    (PropagateStatus then records 00002 as rolled out and 00001 as previous)."""
    return isvc(uri=URI2, annotations={PREV: URI1}, generation=3,
                comp=component(REV2, REV2, REV2, REV1,
                               [{"latestRevision": True, "percent": 100, "revisionName": REV2}]))


def rolled_back():
    """canary-example.md after `canaryTrafficPercent: 0`: PREV 100, LATEST 0,
    PREVROLLEDOUTREVISION ...00001, LATESTREADYREVISION ...00002."""
    return isvc(uri=URI2, canary=0, annotations={PREV: URI1}, generation=4,
                comp=component(REV2, REV2, REV1, REV1, [
                    {"latestRevision": True, "percent": 0, "revisionName": REV2},
                    {"latestRevision": False, "percent": 100, "revisionName": REV1, "tag": "prev"},
                ]))


def canary_failed():
    """A canary whose revision failed (debug.md: revision READY False, REASON ExitCode137): Knative keeps
    serving the old revision, KServe reports PredictorConfigurationReady False."""
    msg = f'Revision "{REV2}" failed with message: Container failed with: ExitCode137.'
    return isvc(uri=URI2, canary=10, annotations={PREV: URI1}, generation=2,
                comp=component(REV2, REV1, REV1, None, [
                    {"latestRevision": True, "percent": 10, "revisionName": REV1},
                    {"latestRevision": False, "percent": 90, "revisionName": REV1, "tag": "prev"},
                ]),
                conds=conditions(ready="False", config="False", reason="RevisionFailed", message=msg))


DOC_STATES = {
    "first_rollout": (first_rollout, "stable"),
    "canary_10": (canary_10, "canary"),
    "canary_tagged": (canary_tagged, "canary"),
    "promoted": (promoted, "stable"),
    "rolled_back": (rolled_back, "rolled-back"),
    "canary_failed": (canary_failed, "failed"),
}


@pytest.mark.parametrize("state", sorted(DOC_STATES))
def test_phase_of_documented_states(state):
    make, expected = DOC_STATES[state]
    assert decide.phase(make()) == expected


def test_phase_progressing_and_unknown():
    creating = isvc(uri=URI2, canary=10, comp=component(REV2, REV1, REV1, None, [
        {"latestRevision": True, "percent": 10, "revisionName": REV1},
        {"latestRevision": False, "percent": 90, "revisionName": REV1, "tag": "prev"}]),
        conds=conditions(ready="Unknown", config="Unknown", reason="RevisionMissing"))
    assert decide.phase(creating) == "progressing"
    assert decide.phase(isvc()) == "unknown"


def test_traffic_by_revision_sums_per_revision():
    assert decide.traffic_by_revision(canary_tagged()) == {
        "sklearn-iris-predictor-default-00003": 10,
        "sklearn-iris-predictor-default-00001": 90,
    }
    # While a new revision is not ready yet, `latest` resolves to the old one: it holds both shares.
    assert decide.traffic_by_revision(canary_failed()) == {REV1: 100}


# --- where the model URI lives ------------------------------------------------------------------


def test_storage_uri_of_custom_container_and_model_spec():
    assert decide.storage_uri(first_rollout()) == URI1
    assert decide.storage_uri(isvc(uri=None)) is None
    model = isvc()
    model["spec"]["predictor"] = {"model": {"modelFormat": {"name": "tensorflow"}, "storageUri": URI1}}
    assert decide.storage_uri(model) == URI1


def test_unknown_predictor_layout_is_refused():
    obj = first_rollout()
    obj["spec"]["predictor"]["containers"] = [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]
    with pytest.raises(RolloutError) as err:
        decide.plan_start(obj, URI2, 10)
    assert err.value.code == ExitCode.NOT_POSSIBLE
    assert "kserve-container" in err.value.message


# --- start --------------------------------------------------------------------------------------


def test_start_patch_sets_uri_percent_and_records_previous():
    plan = decide.plan_start(first_rollout(), URI2, 10)
    container = copy.deepcopy(first_rollout()["spec"]["predictor"]["containers"][0])
    container["env"] = [{"name": "STORAGE_URI", "value": URI2}, {"name": "PROTOCOL", "value": "v2"}]
    assert plan.patch == {
        "metadata": {"resourceVersion": "4711"},
        "spec": {"predictor": {
            "canaryTrafficPercent": 10,
            "containers": [container],
            "annotations": {PREV: URI1},
        }},
    }
    assert plan.wait == "started"
    # The transformer is not in the patch: a merge patch leaves what it does not name alone.
    patched = merge_patch(first_rollout(), plan.patch)
    assert patched["spec"]["transformer"] == first_rollout()["spec"]["transformer"]
    assert decide.storage_uri(patched) == URI2
    assert patched["spec"]["predictor"]["annotations"] == {
        **first_rollout()["spec"]["predictor"]["annotations"], PREV: URI1}


def test_start_during_open_rollout_keeps_recorded_previous():
    uri3 = "gs://cloudmask-models/models/cloudmask-6b/3"
    plan = decide.plan_start(canary_10(), uri3, 20)
    assert "annotations" not in plan.patch["spec"]["predictor"]
    patched = merge_patch(canary_10(), plan.patch)
    assert patched["spec"]["predictor"]["annotations"][PREV] == URI1
    assert decide.storage_uri(patched) == uri3


def test_start_after_promotion_records_the_promoted_uri():
    plan = decide.plan_start(promoted(), "gs://cloudmask-models/models/cloudmask-6b/3", 10)
    assert plan.patch["spec"]["predictor"]["annotations"] == {PREV: URI2}


def test_start_from_bundled_model_appends_env_and_records_empty_previous():
    plan = decide.plan_start(isvc(uri=None, comp=first_rollout()["status"]["components"]["predictor"]), URI2, 10)
    env = plan.patch["spec"]["predictor"]["containers"][0]["env"]
    assert env == [{"name": "PROTOCOL", "value": "v2"}, {"name": "STORAGE_URI", "value": URI2}]
    assert plan.patch["spec"]["predictor"]["annotations"] == {PREV: decide.BUNDLED_MODEL}


def test_start_on_model_spec_predictor_patches_model_storage_uri():
    obj = first_rollout()
    obj["spec"]["predictor"] = {"model": {"modelFormat": {"name": "tensorflow"}, "storageUri": URI1}}
    plan = decide.plan_start(obj, URI2, 25)
    assert plan.patch["spec"]["predictor"] == {
        "canaryTrafficPercent": 25,
        "model": {"storageUri": URI2},
        "annotations": {PREV: URI1},
    }


def test_start_rejects_bad_arguments():
    for uri, pct in (("", 10), (URI2, 101), (URI2, -1)):
        with pytest.raises(RolloutError) as err:
            decide.plan_start(first_rollout(), uri, pct)
        assert err.value.code == ExitCode.USAGE


def test_check_started_follows_the_revision_to_ready():
    plan = decide.plan_start(first_rollout(), URI2, 10)
    assert plan.new_revision and plan.baseline_revision == REV1 and plan.percent == 10
    after_patch = merge_patch(first_rollout(), plan.patch)
    # 1: KServe has not acted yet: the status still shows revision 1, Ready, with 100%.
    v = decide.check_started(after_patch, plan)
    assert v.state == decide.PENDING and "create the new revision (latest created: " + REV1 in v.message
    # 2: revision 2 created, not ready.
    creating = copy.deepcopy(after_patch)
    creating["status"]["components"]["predictor"].update(latestCreatedRevision=REV2)
    creating["status"]["conditions"] = conditions(ready="Unknown", config="Unknown", reason="RevisionMissing")
    v = decide.check_started(creating, plan)
    assert v.state == decide.PENDING and f"revision {REV2} not ready yet (latest ready: {REV1})" == v.message
    # 3: ready, but the route still sends everything to revision 1.
    routing = canary_10()
    routing["status"]["components"]["predictor"]["traffic"] = [
        {"latestRevision": True, "percent": 100, "revisionName": REV2}]
    v = decide.check_started(routing, plan)
    assert v.state == decide.PENDING and f"waiting for 10% on {REV2}" in v.message
    # 4: the documented canary state: done.
    v = decide.check_started(canary_10(), plan)
    assert v.state == decide.DONE and "10% " + REV2 in v.message
    # A failed revision is reported as such, not waited for.
    v = decide.check_started(canary_failed(), plan)
    assert v.state == decide.FAILED and "ExitCode137" in v.message


def test_check_started_when_only_the_percent_changes():
    plan = decide.plan_start(canary_10(), URI2, 30)
    assert not plan.new_revision
    assert decide.check_started(canary_10(), plan).state == decide.PENDING  # still 10%
    at_30 = canary_10()
    at_30["status"]["components"]["predictor"]["traffic"][0]["percent"] = 30
    at_30["status"]["components"]["predictor"]["traffic"][1]["percent"] = 70
    assert decide.check_started(at_30, plan).state == decide.DONE


def test_check_started_on_first_rollout_expects_everything_on_latest():
    plan = decide.plan_start(isvc(), URI1, 10)  # no status yet: nothing rolled out to split against
    first = first_rollout()
    del first["status"]["components"]["predictor"]["latestRolledoutRevision"]
    assert decide.check_started(first, plan).state == decide.DONE


# --- promote ------------------------------------------------------------------------------------


def test_promote_removes_canary_percent():
    plan = decide.plan_promote(canary_10())
    assert plan.patch == {"metadata": {"resourceVersion": "4711"}, "spec": {"predictor": {"canaryTrafficPercent": None}}}
    assert json.dumps(plan.patch["spec"]) == '{"predictor": {"canaryTrafficPercent": null}}'
    assert plan.revision == REV2 and plan.wait == "promoted"
    patched = merge_patch(canary_10(), plan.patch)
    assert "canaryTrafficPercent" not in patched["spec"]["predictor"]
    assert patched["spec"]["predictor"]["containers"] == canary_10()["spec"]["predictor"]["containers"]


def test_promote_refuses_a_revision_that_is_not_ready():
    with pytest.raises(RolloutError) as err:
        decide.plan_promote(canary_failed())
    assert err.value.code == ExitCode.NOT_POSSIBLE and REV2 in err.value.message


def test_promote_of_promoted_sends_nothing():
    plan = decide.plan_promote(promoted())
    assert plan.patch is None and plan.revision == REV2


def test_check_promoted():
    plan = decide.plan_promote(canary_10())
    assert decide.check_promoted(promoted(), plan).state == decide.DONE
    v = decide.check_promoted(canary_10(), plan)
    assert v.state == decide.PENDING and "10% " + REV2 in v.message


# --- rollback -----------------------------------------------------------------------------------


def test_rollback_of_canary_pins_and_restores_in_one_patch():
    plan = decide.plan_rollback(canary_10())
    pred = plan.patch["spec"]["predictor"]
    assert pred["canaryTrafficPercent"] == 0
    assert pred["containers"][0]["env"] == [{"name": "STORAGE_URI", "value": URI1}, {"name": "PROTOCOL", "value": "v2"}]
    assert "annotations" not in pred
    assert plan.wait == "pinned" and plan.revision == REV1 and not plan.restore_after_pin


def test_rollback_of_failed_canary_pins_rolled_out_revision():
    plan = decide.plan_rollback(canary_failed())
    assert plan.revision == REV1 and plan.patch["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_rollback_after_promotion_pins_first_without_touching_the_pod_template():
    plan = decide.plan_rollback(promoted())
    # No containers/annotations: a new revision now would stop KServe from moving
    # latestRolledoutRevision back to previousRolledoutRevision.
    assert plan.patch == {"metadata": {"resourceVersion": "4711"}, "spec": {"predictor": {"canaryTrafficPercent": 0}}}
    assert plan.revision == REV1 and plan.restore_after_pin
    # KServe then reaches the documented rolled-back state; planning again restores the URI.
    assert decide.check_pinned(promoted(), plan).state == decide.PENDING
    assert decide.check_pinned(rolled_back(), plan).state == decide.DONE
    second = decide.plan_rollback(rolled_back())
    assert "canaryTrafficPercent" not in second.patch["spec"]["predictor"]  # already 0
    assert decide.storage_uri(merge_patch(rolled_back(), second.patch)) == URI1
    assert second.revision == REV1 and not second.restore_after_pin


def test_rollback_when_already_rolled_back_sends_nothing():
    done = merge_patch(rolled_back(), decide.plan_rollback(rolled_back()).patch)
    plan = decide.plan_rollback(done)
    assert plan.patch is None and plan.revision == REV1


def test_rollback_without_recorded_previous_only_pins():
    obj = canary_10()
    del obj["spec"]["predictor"]["annotations"][PREV]
    plan = decide.plan_rollback(obj)
    assert plan.patch["spec"]["predictor"] == {"canaryTrafficPercent": 0}
    assert any("previous storage URI unknown" in n for n in plan.notes)


def test_rollback_to_the_bundled_model_removes_storage_uri():
    obj = canary_10()
    obj["spec"]["predictor"]["annotations"][PREV] = decide.BUNDLED_MODEL  # start found no STORAGE_URI
    plan = decide.plan_rollback(obj)
    assert plan.patch["spec"]["predictor"]["containers"][0]["env"] == [{"name": "PROTOCOL", "value": "v2"}]
    assert decide.storage_uri(merge_patch(obj, plan.patch)) is None


def test_rollback_with_nothing_to_roll_back_to():
    with pytest.raises(RolloutError) as err:
        decide.plan_rollback(first_rollout())
    assert err.value.code == ExitCode.NOT_POSSIBLE and "nothing to roll back" in err.value.message
    with pytest.raises(RolloutError) as err:
        decide.plan_rollback(isvc())  # no status: raw deployment or never reconciled
    assert err.value.code == ExitCode.NOT_POSSIBLE


def test_check_pinned_waits_until_the_canary_gets_0():
    plan = decide.plan_rollback(canary_10())
    v = decide.check_pinned(canary_10(), plan)
    assert v.state == decide.PENDING and "90% " + REV1 in v.message
    # A failed canary: Knative already resolves its 10% to revision 1, but KServe has not yet
    # applied canaryTrafficPercent: 0, so it is not pinned.
    assert decide.check_pinned(canary_failed(), decide.plan_rollback(canary_failed())).state == decide.PENDING
    assert decide.check_pinned(rolled_back(), plan).state == decide.DONE


# --- status -------------------------------------------------------------------------------------


def test_summary_of_tagged_canary():
    summary = status.summarize(canary_tagged())
    assert summary["phase"] == "canary"
    assert summary["storageUri"] == URI2 and summary["previousStorageUri"] == URI1
    assert summary["canaryTrafficPercent"] == 10
    assert summary["latestRolledoutRevision"] == "sklearn-iris-predictor-default-00001"
    assert summary["traffic"] == [
        {"revisionName": "sklearn-iris-predictor-default-00003", "percent": 10, "latestRevision": True, "tag": "latest"},
        {"revisionName": "sklearn-iris-predictor-default-00001", "percent": 90, "latestRevision": False, "tag": "prev"},
    ]
    assert {"type": "Ready", "status": "True", "reason": None, "message": None} in summary["conditions"]
    text = status.format_summary(summary)
    assert "canary (Ready=True)" in text
    assert "  10%  sklearn-iris-predictor-default-00003  tag=latest  latest" in text
    assert json.loads(json.dumps(summary)) == summary


def test_summary_of_failed_canary_shows_the_reason():
    text = status.format_summary(status.summarize(canary_failed()))
    assert "failed (Ready=False)" in text
    assert "PredictorConfigurationReady" in text and "RevisionFailed" in text


# --- against the real CRD -----------------------------------------------------------------------

CRD = Path(os.environ.get("CLOUDMASK_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared")) / \
    "kserve" / "serving.kserve.io_inferenceservices.yaml"


def _strict(schema):
    """OpenAPI v3 structural schema -> JSON Schema that rejects unknown fields, as the API server
    prunes/rejects them (fieldValidation=Strict)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
        if schema.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    return schema


@pytest.fixture(scope="module")
def crd_validator():
    from ci import missing

    if not CRD.is_file():
        missing(f"InferenceService CRD not found at {CRD} (set CLOUDMASK_SHARED)")
    import jsonschema  # dev dependencies: an ImportError here is a broken install, not a reason to skip
    import yaml
    crd = yaml.load(CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1beta1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = _strict(v1beta1["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def _errors(validator, obj):
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def test_fixtures_and_patched_objects_match_the_crd(crd_validator):
    objects = {name: make() for name, (make, _) in DOC_STATES.items()}
    objects["after start"] = merge_patch(first_rollout(), decide.plan_start(first_rollout(), URI2, 10).patch)
    objects["after promote"] = merge_patch(canary_10(), decide.plan_promote(canary_10()).patch)
    objects["after rollback"] = merge_patch(canary_10(), decide.plan_rollback(canary_10()).patch)
    objects["after pin"] = merge_patch(promoted(), decide.plan_rollback(promoted()).patch)
    bundled = isvc(uri=None, comp=first_rollout()["status"]["components"]["predictor"])
    objects["after start from bundled"] = merge_patch(bundled, decide.plan_start(bundled, URI2, 10).patch)
    for name, obj in objects.items():
        assert _errors(crd_validator, obj) == [], name


def test_crd_check_rejects_a_misspelt_field(crd_validator):
    bad = merge_patch(first_rollout(), {"spec": {"predictor": {"canaryTraficPercent": 10}}})
    assert any("canaryTraficPercent" in e for e in _errors(crd_validator, bad))
    bad = merge_patch(first_rollout(), {"status": {"components": {"predictor": {"latestRolloutRevision": REV1}}}})
    assert any("latestRolloutRevision" in e for e in _errors(crd_validator, bad))
