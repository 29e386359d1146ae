"""kserve/: the kustomize base, overlays and components render, and what they render is valid.

No Kubernetes API server, KServe or Knative runs here, so nothing is applied. What stands in:
- `kubectl kustomize` renders every overlay (and prod with the GPU component) for real;
- every InferenceService is validated against the openAPIV3Schema of KServe's real CRD
  (../shared/kserve), tightened so that an unknown field is an error, as `kubectl apply
  --validate=strict` makes it (a negative case proves a misspelt field fails);
- every core resource is validated with kubernetes-validate (strict);
- checkov scans the rendered output, plus the pods KServe will make from each component (pod spec
  copied from the InferenceService, its annotations carried over as KServe does);
- KServe's own translation to Knative (fields -> autoscaling.knative.dev/* annotations, flags it
  appends to the transformer) is restated from its source and checked against the overlays;
- the flags in the manifests are parsed by the real `python -m predictor|transformer` parsers;
- who may reach which pod: the predictor's cluster-local label is followed through KServe's
  label handling (restated from its source) onto its Knative Service only, and the
  NetworkPolicies are evaluated by a small restatement of Kubernetes' NetworkPolicy rules
  (podSelector / namespaceSelector, policies adding up) on a matrix of callers;
- the optional auth component (Istio RequestAuthentication + AuthorizationPolicy) renders onto
  prod and is checked against the fields of Istio's security API restated as a closed schema
  (Istio's CRDs are not at hand), selecting the transformer's pods and no others.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
from ci import missing
import yaml
from tools import tool

ROOT = Path(__file__).resolve().parents[2]
KSERVE = ROOT / "kserve"
OVERLAYS = ("dev", "prod", "canary")
# Core resources are checked against the oldest Kubernetes the manifests aim at and the newest
# schema kubernetes-validate ships.
K8S_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())
COMPONENTS = ("predictor", "transformer")
# What KServe overwrites on each revision from the component's fields (see knative_annotations).
KSERVE_OWNED = {
    "autoscaling.knative.dev/min-scale": "minReplicas",
    "autoscaling.knative.dev/max-scale": "maxReplicas",
    "autoscaling.knative.dev/target": "scaleTarget",
    "autoscaling.knative.dev/metric": "scaleMetric",
}


# --- tools and inputs -------------------------------------------------------------------------


def _require(what: str, reason: str):
    """Skip on a developer machine without `what`; fail in CI (CI=true), where it must be there."""
    missing(f"{what} is missing: {reason}")


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        _require("kubectl", "it renders the kustomize overlays (kubectl kustomize)")
    return path




def _crd_path() -> Path:
    shared = Path(os.environ.get("CLOUDMASK_SHARED", ROOT.parent / "shared"))
    path = shared / "kserve" / "serving.kserve.io_inferenceservices.yaml"
    if not path.is_file():
        _require(str(path), "KServe's InferenceService CRD, the schema the manifests are checked against")
    return path


def kustomize(path: Path) -> list[dict]:
    out = subprocess.run([_kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _with_gpu(tmp_path_factory) -> list[dict]:
    """prod plus components/gpu, rendered through a throwaway kustomization as the guide says to add it."""
    where = tmp_path_factory.mktemp("prod-gpu")
    (where / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(KSERVE / "overlays" / "prod", where)],
        "components": [os.path.relpath(KSERVE / "components" / "gpu", where)],
    }))
    return kustomize(where)


def _with_component(tmp_path_factory, component: str) -> list[dict]:
    """prod plus components/<component>, through a throwaway kustomization as the guide says to add it."""
    where = tmp_path_factory.mktemp(f"prod-{component}")
    (where / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(KSERVE / "overlays" / "prod", where)],
        "components": [os.path.relpath(KSERVE / "components" / component, where)],
    }))
    return kustomize(where)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    out = {name: kustomize(KSERVE / "overlays" / name) for name in OVERLAYS}
    out["prod+gpu"] = _with_gpu(tmp_path_factory)
    return out


@pytest.fixture(scope="module")
def with_auth(tmp_path_factory) -> list[dict]:
    return _with_component(tmp_path_factory, "auth")


def isvc_of(docs: list[dict]) -> dict:
    found = [d for d in docs if d["kind"] == "InferenceService"]
    assert len(found) == 1, [d["kind"] for d in docs]
    return found[0]


def container(component_spec: dict) -> dict:
    (c,) = [c for c in component_spec["containers"] if c["name"] == "kserve-container"]
    return c


# --- the CRD schema, strict -------------------------------------------------------------------


def close_schema(schema):
    """A copy of an OpenAPI v3 schema in which every object that lists `properties` rejects others.

    CRDs leave additionalProperties unset; the API server prunes unknown fields instead (and strict
    field validation turns them into errors). jsonschema needs it said: additionalProperties false
    on every schema with `properties`, unless it already says what extra keys may be or keeps them
    (x-kubernetes-preserve-unknown-fields).
    """
    if isinstance(schema, list):
        return [close_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: close_schema(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def isvc_validator() -> jsonschema.Draft7Validator:
    # The CRD is 2 MB of YAML: libyaml's loader reads it in a few seconds, PyYAML's own in many.
    crd = yaml.load(_crd_path().read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1beta1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = close_schema(v1beta1["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(validator, doc) -> list[str]:
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc))


def test_close_schema_closes_every_object_with_properties_and_only_those():
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "properties": {"x": {}}, "x-kubernetes-preserve-unknown-fields": True},
        "list": {"type": "array", "items": {"type": "object", "properties": {"b": {}}}},
    }}
    closed = close_schema(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["spec"]["additionalProperties"] is False
    assert closed["properties"]["list"]["items"]["additionalProperties"] is False
    assert closed["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in closed["properties"]["free"]
    assert "additionalProperties" not in schema  # the input is left alone


@pytest.mark.parametrize("overlay", [*OVERLAYS, "prod+gpu"])
def test_inferenceservice_validates_against_the_kserve_crd(rendered, isvc_validator, overlay):
    isvc = isvc_of(rendered[overlay])
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert schema_errors(isvc_validator, isvc) == []
    validate_object_meta(isvc["metadata"])


def validate_object_meta(meta: dict) -> None:
    """The CRD leaves metadata to the API server (plain `type: object`); check it as the ObjectMeta
    it is, through a ConfigMap that carries it, with kubernetes-validate (strict)."""
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta},
                                 K8S_VERSIONS[0], strict=True)


def test_a_misspelt_metadata_field_fails_validation(rendered):
    meta = copy.deepcopy(isvc_of(rendered["prod"])["metadata"])
    meta["annotation"] = meta.pop("annotations")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object_meta(meta)


@pytest.mark.parametrize("where, key", [
    (("spec", "predictor"), "canaryTrafficPercnt"),
    (("spec", "predictor"), "containerss"),
    (("spec", "transformer", "containers", 0), "readinesProbe"),
    (("spec", "predictor", "containers", 0, "securityContext"), "readOnlyRootFileSystem"),
    (("spec",), "transfomer"),
])
def test_a_misspelt_field_fails_validation(rendered, isvc_validator, where, key):
    isvc = copy.deepcopy(isvc_of(rendered["canary"]))
    node = isvc
    for step in where:
        node = node[step]
    node[key] = 10
    errors = schema_errors(isvc_validator, isvc)
    assert len(errors) == 1 and repr(key) in errors[0], errors


def test_a_wrong_type_fails_validation(rendered, isvc_validator):
    isvc = copy.deepcopy(isvc_of(rendered["prod"]))
    isvc["spec"]["predictor"]["minReplicas"] = "two"
    assert schema_errors(isvc_validator, isvc) != []


@pytest.mark.parametrize("overlay", [*OVERLAYS, "prod+gpu"])
def test_core_resources_validate_with_kubernetes_validate(rendered, overlay):
    core = [d for d in rendered[overlay] if d["kind"] != "InferenceService"]
    assert {d["kind"] for d in core} == {"ServiceAccount", "NetworkPolicy"}
    for doc in core:
        assert doc["metadata"]["namespace"] == "cloudmask"
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_validate_rejects_a_misspelt_core_field(rendered):
    sa = copy.deepcopy(next(d for d in rendered["prod"] if d["kind"] == "ServiceAccount"))
    sa["automountServiceAcountToken"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sa, K8S_VERSIONS[0], strict=True)


def test_parameters_never_reach_the_cluster(rendered):
    """params.yaml is local-config: its values are copied in, the ConfigMap itself is not rendered."""
    for docs in rendered.values():
        assert not [d for d in docs if d["kind"] == "ConfigMap"]
        text = yaml.safe_dump_all(docs)
        assert "cloudmask-params" not in text


# --- what KServe and Knative will make of it --------------------------------------------------


def knative_annotations(isvc: dict, component: str) -> dict[str, str]:
    """The annotations KServe puts on the component's Knative revision template.

    Restated from KServe's Knative reconciler (createKnativeService in
    pkg/controller/v1beta1/inferenceservice/reconcilers/knative/ksvc_reconciler.go): the
    InferenceService's annotations and the component's, then min-scale from minReplicas (1 when
    unset), max-scale from maxReplicas (when not 0), target from scaleTarget, metric from
    scaleMetric, and the KPA class unless one is given.
    """
    spec = isvc["spec"][component]
    out = {**isvc["metadata"].get("annotations", {}), **spec.get("annotations", {})}
    out["autoscaling.knative.dev/min-scale"] = str(spec.get("minReplicas", 1))
    if spec.get("maxReplicas", 0) != 0:
        out["autoscaling.knative.dev/max-scale"] = str(spec["maxReplicas"])
    out.setdefault("autoscaling.knative.dev/class", "kpa.autoscaling.knative.dev")
    if "scaleTarget" in spec:
        out["autoscaling.knative.dev/target"] = str(spec["scaleTarget"])
    if "scaleMetric" in spec:
        out["autoscaling.knative.dev/metric"] = spec["scaleMetric"]
    return out


def test_deployment_mode_is_knative(rendered):
    for docs in rendered.values():
        assert isvc_of(docs)["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_annotation_that_kserve_would_overwrite(rendered, overlay):
    isvc = isvc_of(rendered[overlay])
    given = dict(isvc["metadata"].get("annotations", {}))
    for component in COMPONENTS:
        given.update(isvc["spec"][component].get("annotations", {}))
    clash = {k: f"set {KSERVE_OWNED[k]} instead" for k in given if k in KSERVE_OWNED}
    assert clash == {}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_autoscaling_is_fully_specified(rendered, overlay, component):
    isvc = isvc_of(rendered[overlay])
    spec = isvc["spec"][component]
    ann = knative_annotations(isvc, component)
    assert ann["autoscaling.knative.dev/metric"] == "concurrency"
    assert ann["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert re.fullmatch(r"\d+[smh]", ann["autoscaling.knative.dev/scale-down-delay"])
    assert 0 < int(ann["autoscaling.knative.dev/target-utilization-percentage"]) <= 100
    min_scale = int(ann["autoscaling.knative.dev/min-scale"])
    max_scale = int(ann["autoscaling.knative.dev/max-scale"])
    assert 0 <= min_scale <= max_scale
    # The soft target the autoscaler steers to must fit under the hard per-pod limit.
    assert 1 <= spec["scaleTarget"] <= spec["containerConcurrency"]
    assert spec["timeout"] > 0


def test_dev_scales_to_zero_and_prod_never_does(rendered):
    for component in COMPONENTS:
        dev = knative_annotations(isvc_of(rendered["dev"]), component)
        prod = knative_annotations(isvc_of(rendered["prod"]), component)
        assert dev["autoscaling.knative.dev/min-scale"] == "0"
        assert int(prod["autoscaling.knative.dev/min-scale"]) >= 2


def _cpu(q: str) -> float:
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def _mem_gib(q: str) -> float:
    units = {"Mi": 1 / 1024, "Gi": 1.0}
    return float(q[:-2]) * units[q[-2:]]


def test_dev_pods_are_smaller_than_prod_pods(rendered):
    for component in COMPONENTS:
        dev = container(isvc_of(rendered["dev"])["spec"][component])["resources"]["limits"]
        prod = container(isvc_of(rendered["prod"])["spec"][component])["resources"]["limits"]
        assert _cpu(dev["cpu"]) < _cpu(prod["cpu"])
        assert _mem_gib(dev["memory"]) < _mem_gib(prod["memory"])


@pytest.mark.parametrize("overlay", [*OVERLAYS, "prod+gpu"])
@pytest.mark.parametrize("component", COMPONENTS)
def test_containers_are_locked_down(rendered, overlay, component):
    spec = isvc_of(rendered[overlay])["spec"][component]
    c = container(spec)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 10000
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == sc["runAsUser"]
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    # A read-only root needs somewhere to write: /tmp on an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    res = c["resources"]
    for kind in ("cpu", "memory"):
        assert kind in res["requests"] and kind in res["limits"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_and_probes_fit_knative_and_the_model_server(rendered, overlay):
    """Knative routes one port per container, named h2c (gRPC) or http1; KServe's ModelServer
    answers /v2/health/{ready,live} on its HTTP port 8080 whatever the routed port."""
    isvc = isvc_of(rendered[overlay])
    routed = {"predictor": {"name": "h2c", "containerPort": 8081, "protocol": "TCP"},
              "transformer": {"name": "http1", "containerPort": 8080, "protocol": "TCP"}}
    for component in COMPONENTS:
        c = container(isvc["spec"][component])
        assert c["ports"] == [routed[component]]
        for probe, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
            assert c[probe]["httpGet"] == {"path": path, "port": 8080}
            assert c[probe]["timeoutSeconds"] >= 1 and c[probe]["failureThreshold"] >= 1
        # the liveness probe must not kill a pod that is still loading its models
        assert c["livenessProbe"]["initialDelaySeconds"] >= c["readinessProbe"].get("initialDelaySeconds", 0)


def _args(c: dict) -> dict[str, str]:
    out = {}
    for a in c["args"]:
        assert a.startswith("--") and "=" in a, f"{a!r}: use --flag=value so KServe's prefix match sees it"
        k, v = a.split("=", 1)
        out[k] = v
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_transformer_talks_grpc_v2_to_the_predictor_kserve_names(rendered, overlay):
    isvc = isvc_of(rendered[overlay])
    args = _args(container(isvc["spec"]["transformer"]))
    assert args["--predictor_protocol"] == "grpc-v2"
    assert args["--model_name"] == isvc["metadata"]["name"] == "cloudmask"
    # KServe appends --predictor_host <name>-predictor.<namespace> unless it is already there.
    assert "--predictor_host" not in args
    # KServe appends --workers <containerConcurrency> unless it is already there.
    assert args["--workers"] == "1"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_predictor_reads_the_model_kserve_downloads_and_falls_back_to_the_bundled_one(rendered, overlay):
    pred = container(isvc_of(rendered[overlay])["spec"]["predictor"])
    args = _args(pred)
    # KServe's storage initializer downloads the custom container's STORAGE_URI to /mnt/models.
    assert args["--model_dir"] == "/mnt/models"
    image_models = _dockerfile_models_dir()
    assert args["--fallback_model_dir"] == image_models
    env = {e["name"]: e["value"] for e in pred["env"]}
    assert re.fullmatch(r"gs://[a-zA-Z0-9._-]+/models/\d+", env["STORAGE_URI"]), env


def _dockerfile_models_dir() -> str:
    """Where Dockerfile.predictor puts the bundled model (its COPY models/ destination)."""
    copies = re.findall(r"^COPY\s+models/\s+(\S+)$", (ROOT / "Dockerfile.predictor").read_text(), re.M)
    assert len(copies) == 1, copies
    return copies[0].rstrip("/")


def _dockerfile_user(name: str) -> int:
    users = re.findall(r"^USER\s+(\d+)(?::\d+)?$", (ROOT / name).read_text(), re.M)
    return int(users[-1])


def test_manifests_run_as_the_image_user(rendered):
    isvc = isvc_of(rendered["prod"])
    for component in COMPONENTS:
        uid = container(isvc["spec"][component])["securityContext"]["runAsUser"]
        assert uid == _dockerfile_user(f"Dockerfile.{component}")


def test_overlays_point_at_artifact_registry_images(rendered):
    for name, docs in rendered.items():
        isvc = isvc_of(docs)
        for component in COMPONENTS:
            image = container(isvc["spec"][component])["image"]
            assert re.fullmatch(rf"[A-Za-z0-9-]+-docker\.pkg\.dev/[^/]+/[^/]+/cloudmask-{component}:[^:@]+", image), \
                (name, image)


def test_canary_is_prod_with_a_new_release_on_a_slice_of_predictor_traffic(rendered):
    prod, canary = isvc_of(rendered["prod"]), isvc_of(rendered["canary"])
    percent = canary["spec"]["predictor"]["canaryTrafficPercent"]
    assert 0 < percent < 100
    assert "canaryTrafficPercent" not in prod["spec"]["predictor"]

    def uri(isvc):
        return next(e["value"] for e in container(isvc["spec"]["predictor"])["env"] if e["name"] == "STORAGE_URI")

    head, _, release = uri(prod).rpartition("/")
    new_head, _, new_release = uri(canary).rpartition("/")
    assert new_head == head and int(new_release) > int(release)
    # Only the predictor changes, so only the predictor gets a new revision.
    assert canary["spec"]["transformer"] == prod["spec"]["transformer"]
    strip = copy.deepcopy(canary)
    del strip["spec"]["predictor"]["canaryTrafficPercent"]
    container(strip["spec"]["predictor"])["env"] = container(prod["spec"]["predictor"])["env"]
    del strip["metadata"]["annotations"]["serving.kserve.io/enable-tag-routing"]
    assert strip == prod


def test_gpu_component_puts_only_the_predictor_on_the_gpu_pool(rendered):
    prod, gpu = isvc_of(rendered["prod"]), isvc_of(rendered["prod+gpu"])
    pred = gpu["spec"]["predictor"]
    assert pred["nodeSelector"] == {"cloudmask.io/pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in pred["tolerations"]
    assert container(pred)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["spec"]["transformer"] == prod["spec"]["transformer"]
    assert prod["spec"]["predictor"]["nodeSelector"] == {"cloudmask.io/pool": "inference"}
    assert "tolerations" not in prod["spec"]["predictor"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_real_servers_accept_the_flags_in_the_manifests(rendered, overlay):
    """Each container's args, plus those KServe appends, go through the real argument parsers."""
    from predictor.__main__ import parse as parse_predictor
    from transformer.__main__ import parse as parse_transformer

    isvc = isvc_of(rendered[overlay])
    pred = parse_predictor(container(isvc["spec"]["predictor"])["args"])
    assert (pred.model_dir, pred.http_port, pred.grpc_port) == ("/mnt/models", 8080, 8081)
    kserve_appends = ["--predictor_host", "cloudmask-predictor.cloudmask", "--http_port", "8080"]
    trans = parse_transformer(container(isvc["spec"]["transformer"])["args"] + kserve_appends)
    assert (trans.predictor_protocol, trans.model_name, trans.workers) == ("grpc-v2", "cloudmask", 1)
    with pytest.raises(SystemExit):
        parse_predictor(["--model_dri=/mnt/models"])


# --- checkov ----------------------------------------------------------------------------------

POD_FIELDS = {"containers", "volumes", "serviceAccountName", "nodeSelector", "tolerations", "affinity",
              "imagePullSecrets", "securityContext"}
SKIP_ANNOTATION = re.compile(r"checkov\.io/skip\d+")


def pods_from(isvc: dict, keep_skips: bool = True) -> list[dict]:
    """The pod each component becomes: its pod spec, the InferenceService's and the component's
    annotations (KServe copies both onto the revision), KServe's labels. Injected sidecars (queue-proxy,
    storage initializer) are Knative's and KServe's, not ours, and are left out."""
    out = []
    for component in COMPONENTS:
        spec = isvc["spec"][component]
        ann = {**isvc["metadata"].get("annotations", {}), **spec.get("annotations", {})}
        if not keep_skips:
            ann = {k: v for k, v in ann.items() if not SKIP_ANNOTATION.fullmatch(k)}
        name = f"{isvc['metadata']['name']}-{component}" + ("" if keep_skips else "-unsuppressed")
        out.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": isvc["metadata"]["namespace"], "annotations": ann,
                         "labels": {"serving.kserve.io/inferenceservice": isvc["metadata"]["name"],
                                    "component": component}},
            "spec": {k: v for k, v in spec.items() if k in POD_FIELDS},
        })
    return out


@pytest.fixture(scope="module")
def checkov_results(rendered, tmp_path_factory) -> dict:
    """One checkov run over every overlay's output, the pods made from it, and, for the canary, the
    same pods without their checkov.io/skip annotations (to show each skip is needed)."""
    where = tmp_path_factory.mktemp("checkov")
    for name, docs in rendered.items():
        stem = name.replace("+", "-")
        (where / f"{stem}.yaml").write_text(yaml.safe_dump_all(docs))
        (where / f"{stem}-pods.yaml").write_text(yaml.safe_dump_all(pods_from(isvc_of(docs))))
    (where / "unsuppressed-pods.yaml").write_text(
        yaml.safe_dump_all(pods_from(isvc_of(rendered["canary"]), keep_skips=False)))
    out = subprocess.run(
        [tool("checkov"), "-d", str(where), "--framework", "kubernetes", "--output", "json",
         "--compact", "--skip-download"],
        capture_output=True, text=True, timeout=600)
    assert out.stdout.strip(), out.stderr
    reports = json.loads(out.stdout)
    (report,) = reports if isinstance(reports, list) else [reports]
    return report


def test_checkov_passes_on_the_rendered_manifests_and_their_pods(checkov_results):
    assert checkov_results["summary"]["parsing_errors"] == 0
    failed = [(f["check_id"], f["resource"], f["file_path"]) for f in checkov_results["results"]["failed_checks"]
              if "unsuppressed" not in f["resource"]]
    assert failed == []
    passed = {f["resource"] for f in checkov_results["results"]["passed_checks"]}
    assert {"Pod.cloudmask.cloudmask-predictor", "Pod.cloudmask.cloudmask-transformer"} <= passed


def test_every_checkov_skip_is_justified_and_needed(rendered, checkov_results):
    annotations = isvc_of(rendered["canary"])["metadata"]["annotations"]
    skips = {}
    for key, value in annotations.items():
        if SKIP_ANNOTATION.fullmatch(key):
            check, _, reason = value.partition("=")
            assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason.split()) >= 8, (key, value)
            skips[check] = reason
    assert skips, "no skips: then this test should go"
    unsuppressed = {f["check_id"] for f in checkov_results["results"]["failed_checks"]
                    if "unsuppressed" in f["resource"]}
    # Without its annotation each skipped check fails, and nothing else does.
    assert unsuppressed == set(skips)


# --- who can reach what ------------------------------------------------------------------------
# No cluster here: what KServe, Knative and the NetworkPolicy enforcer would do with the
# manifests is restated from their sources and documentation, and checked on the rendered output.

VISIBILITY = "networking.knative.dev/visibility"  # Knative: this label on a Service makes it cluster-local
KSERVE_VISIBILITY = "networking.kserve.io/visibility"  # KServe: on an InferenceService, closes all of it


def ksvc_labels(isvc: dict, component: str) -> tuple[dict, dict]:
    """(labels of the component's Knative Service, labels of its revision template), restated
    from KServe: the component's ObjectMeta labels are the union of the InferenceService's labels,
    the component's and KServe's own (buildObjectMeta in components/predictor.go, likewise for the
    transformer); createKnativeService (reconcilers/knative/ksvc_reconciler.go) puts them all on
    the Service, and on the revision template all but RevisionTemplateLabelDisallowedList
    (constants.go: the visibility label, which Knative refuses there)."""
    labels = {**isvc["metadata"].get("labels", {}), **isvc["spec"][component].get("labels", {}),
              "serving.kserve.io/inferenceservice": isvc["metadata"]["name"], "component": component}
    return labels, {k: v for k, v in labels.items() if k != VISIBILITY}


@pytest.mark.parametrize("overlay", [*OVERLAYS, "prod+gpu"])
def test_only_the_predictor_is_cluster_local(rendered, overlay):
    isvc = isvc_of(rendered[overlay])
    pred_service, pred_template = ksvc_labels(isvc, "predictor")
    trans_service, _ = ksvc_labels(isvc, "transformer")
    assert pred_service[VISIBILITY] == "cluster-local"
    assert VISIBILITY not in pred_template  # the label goes on the Service only
    # the transformer keeps the public route; nothing closes the whole InferenceService
    assert VISIBILITY not in trans_service
    assert KSERVE_VISIBILITY not in isvc["metadata"].get("labels", {})
    assert KSERVE_VISIBILITY not in isvc["metadata"].get("annotations", {})


def _matches(selector: dict, labels: dict) -> bool:
    """A LabelSelector: {} selects everything; only matchLabels is used in kserve/ (asserted)."""
    assert set(selector) <= {"matchLabels"}, f"selector form not restated here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def ingress_allowed(policies: list[dict], dst: dict, src: dict) -> bool:
    """Whether `src` may open a connection to `dst` under `policies` (ingress), restated from
    Kubernetes' NetworkPolicy semantics: a pod that no policy with policyTypes Ingress selects
    accepts everything; a selected pod accepts a peer that some `from` entry of some selecting
    policy matches (policies add up). A `from` entry with only podSelector matches pods of the
    policy's own namespace; with only namespaceSelector, every pod of the matching namespaces.
    dst/src: {"namespace": ..., "labels": {...}}; a namespace's labels are its
    kubernetes.io/metadata.name, which the API server sets on every namespace."""
    selecting = [p for p in policies
                 if p["metadata"]["namespace"] == dst["namespace"] and "Ingress" in p["spec"]["policyTypes"]
                 and _matches(p["spec"]["podSelector"], dst["labels"])]
    if not selecting:
        return True
    ns_labels = {"kubernetes.io/metadata.name": src["namespace"]}
    for p in selecting:
        for rule in p["spec"].get("ingress", []):
            assert set(rule) == {"from"}, "port-restricted rules are not restated here"
            for peer in rule["from"]:
                assert set(peer) <= {"podSelector", "namespaceSelector"}, peer
                if "namespaceSelector" in peer:
                    ns_ok = _matches(peer["namespaceSelector"], ns_labels)
                else:
                    ns_ok = src["namespace"] == p["metadata"]["namespace"]
                if ns_ok and _matches(peer.get("podSelector", {}), src["labels"]):
                    return True
    return False


def _pod(namespace: str, **labels) -> dict:
    return {"namespace": namespace, "labels": labels}


def test_ingress_allowed_restates_the_rules():
    """The restatement on policies whose answers Kubernetes' documentation spells out."""
    deny = {"metadata": {"namespace": "a"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    same_ns = {"metadata": {"namespace": "a"}, "spec": {"podSelector": {"matchLabels": {"app": "x"}},
               "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "c"}}}]}]}}
    x, client = _pod("a", app="x"), _pod("a", role="c")
    assert ingress_allowed([], x, _pod("b"))  # no policy: open
    assert not ingress_allowed([deny], x, client)  # default deny
    assert ingress_allowed([deny, same_ns], x, client)  # policies add up
    assert not ingress_allowed([deny, same_ns], x, _pod("b", role="c"))  # podSelector alone: own namespace
    assert not ingress_allowed([deny, same_ns], _pod("a", app="y"), client)


def _policies(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] == "NetworkPolicy"]


@pytest.mark.parametrize("overlay", [*OVERLAYS, "prod+gpu"])
def test_only_the_transformer_and_the_data_plane_reach_the_predictor(rendered, overlay):
    docs = rendered[overlay]
    isvc = isvc_of(docs)
    pods = {p["metadata"]["labels"]["component"]: _pod(p["metadata"]["namespace"], **p["metadata"]["labels"])
            for p in pods_from(isvc)}
    policies = _policies(docs)
    predictor, transformer = pods["predictor"], pods["transformer"]
    data_plane = [_pod("knative-serving", app="3scale-kourier-gateway"), _pod("knative-serving", app="activator"),
                  _pod("knative-serving", app="autoscaler"), _pod("kourier-system", app="3scale-kourier-gateway")]
    for caller in [transformer, *data_plane]:
        assert ingress_allowed(policies, predictor, caller), caller
    outsiders = [
        _pod("cloudmask", app="debug"),  # any other pod of the namespace
        _pod("cloudmask", component="transformer"),  # a transformer of another InferenceService
        _pod("default", **transformer["labels"]),  # the transformer's labels, elsewhere
        _pod("istio-system", app="istio-ingressgateway"), _pod("kserve", control_plane="kserve-controller-manager"),
    ]
    for caller in outsiders:
        assert not ingress_allowed(policies, predictor, caller), caller
    # the transformer: the data plane only (every request comes through Kourier or the activator)
    for caller in data_plane:
        assert ingress_allowed(policies, transformer, caller), caller
    for caller in [predictor, *outsiders]:
        assert not ingress_allowed(policies, transformer, caller), caller
    # and the rest of the namespace accepts nothing
    assert not ingress_allowed(policies, _pod("cloudmask", app="other"), _pod("knative-serving", app="activator"))


# --- the optional auth component (Istio) -------------------------------------------------------

def _closed(properties: dict, required=()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


_STRINGS = {"type": "array", "items": {"type": "string"}}
_SELECTOR = _closed({"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}})
_META = {"type": "object", "required": ["name", "namespace"]}
# The fields kserve/components/auth uses, restated from Istio's security API reference
# (security.istio.io/v1: RequestAuthentication, JWTRule, AuthorizationPolicy, Rule, Source,
# Operation); a closed schema, so a misspelt or invented field fails as it would under
# `kubectl apply --validate=strict` with Istio's CRDs.
ISTIO_SCHEMAS = {
    "RequestAuthentication": _closed({
        "apiVersion": {"const": "security.istio.io/v1"}, "kind": {"const": "RequestAuthentication"},
        "metadata": _META,
        "spec": _closed({"selector": _SELECTOR, "jwtRules": {"type": "array", "minItems": 1, "items": _closed({
            "issuer": {"type": "string"}, "jwksUri": {"type": "string", "pattern": "^https://"},
            "audiences": _STRINGS, "forwardOriginalToken": {"type": "boolean"},
            "fromHeaders": {"type": "array"}, "outputPayloadToHeader": {"type": "string"},
        }, required=["issuer"])}}, required=["selector", "jwtRules"]),
    }, required=["apiVersion", "kind", "metadata", "spec"]),
    "AuthorizationPolicy": _closed({
        "apiVersion": {"const": "security.istio.io/v1"}, "kind": {"const": "AuthorizationPolicy"},
        "metadata": _META,
        "spec": _closed({"selector": _SELECTOR, "action": {"enum": ["ALLOW", "DENY", "AUDIT", "CUSTOM"]},
                         "rules": {"type": "array", "items": _closed({
                             "from": {"type": "array", "items": _closed({"source": _closed({
                                 "principals": _STRINGS, "requestPrincipals": _STRINGS, "namespaces": _STRINGS,
                                 "ipBlocks": _STRINGS})})},
                             "to": {"type": "array", "items": _closed({"operation": _closed({
                                 "hosts": _STRINGS, "ports": _STRINGS, "methods": _STRINGS, "paths": _STRINGS,
                                 "notPaths": _STRINGS})})},
                             "when": {"type": "array"}})}},
                        required=["selector", "action", "rules"]),
    }, required=["apiVersion", "kind", "metadata", "spec"]),
}


def _istio_errors(doc: dict) -> list[str]:
    v = jsonschema.Draft7Validator(ISTIO_SCHEMAS[doc["kind"]])
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc))


def _auth_docs(docs: list[dict]) -> dict[str, dict]:
    found = {d["kind"]: d for d in docs if d["apiVersion"].startswith("security.istio.io/")}
    assert len(found) == len([d for d in docs if d["apiVersion"].startswith("security.istio.io/")])
    return found


def test_auth_component_adds_only_the_istio_policies(rendered, with_auth):
    auth = _auth_docs(with_auth)
    assert set(auth) == {"RequestAuthentication", "AuthorizationPolicy"}
    for doc in auth.values():
        assert _istio_errors(doc) == [], doc["kind"]
        assert doc["metadata"]["namespace"] == "cloudmask"
        validate_object_meta(doc["metadata"])
    rest = [d for d in with_auth if not d["apiVersion"].startswith("security.istio.io/")]
    assert rest == rendered["prod"]  # the InferenceService and the rest are prod's, unchanged
    assert not _auth_docs(rendered["prod"])  # and nothing of it without the component


@pytest.mark.parametrize("field, where", [("jwtRule", ("spec",)), ("jwksUrl", ("spec", "jwtRules", 0)),
                                          ("matchLabel", ("spec", "selector"))])
def test_a_misspelt_istio_field_fails_validation(with_auth, field, where):
    doc = copy.deepcopy(_auth_docs(with_auth)["RequestAuthentication"])
    node = doc
    for step in where:
        node = node[step]
    node[field] = "x"
    errors = _istio_errors(doc)
    assert len(errors) == 1 and repr(field) in errors[0], errors


def test_auth_selects_the_transformer_pods_and_requires_a_valid_token(rendered, with_auth):
    auth = _auth_docs(with_auth)
    pods = {p["metadata"]["labels"]["component"]: p["metadata"]["labels"] for p in pods_from(isvc_of(rendered["prod"]))}
    for doc in auth.values():
        assert _matches(doc["spec"]["selector"], pods["transformer"]), doc["kind"]
        assert not _matches(doc["spec"]["selector"], pods["predictor"]), doc["kind"]
    (rule,) = auth["RequestAuthentication"]["spec"]["jwtRules"]
    policy = auth["AuthorizationPolicy"]["spec"]
    assert policy["action"] == "ALLOW"
    # In an ALLOW policy an empty rule, or one with only `to`, lets everyone in: each rule must
    # ask for a token of the configured issuer, or only open the probe and metrics paths
    # Knative's own pods call, for GET.
    for r in policy["rules"]:
        assert r, "an empty rule allows every request"
        principals = [p for f in r.get("from", []) for p in f["source"].get("requestPrincipals", [])]
        if principals:
            assert all(p.startswith(rule["issuer"] + "/") for p in principals), principals
        else:
            ops = [t["operation"] for t in r["to"]]
            assert ops and all(o["methods"] == ["GET"] and set(o["paths"]) <= {"/healthz", "/metrics"} for o in ops), r
    assert any("from" in r for r in policy["rules"])
