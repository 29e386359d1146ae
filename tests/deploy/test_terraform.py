"""Offline checks of terraform/ (GKE, registry, model bucket, identities, serving stack).

What cannot run here: `terraform init`, `validate` and `plan` need the provider registry
(hashicorp/google, google-beta, kubernetes, helm), which neither this machine nor CI can reach,
and `apply` needs a Google Cloud project. What stands in for them:

* `terraform fmt -check` - Terraform's own parser over every file;
* structural rules on the HCL as parsed by `hcl2` (bc-python-hcl2, the parser checkov itself
  uses): pinned providers, modules and charts, typed and described variables without
  project-specific defaults, private nodes, Workload Identity, shielded nodes, the IAM wiring,
  the order of the Helm releases. Each rule is also run on a small broken config, so each is
  shown to fail when it should;
* checkov's Terraform policies with zero failures, every skip justified inline.

terraform and checkov must be installed; under CI=true a missing tool fails the run instead of
skipping it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
from ci import missing
import yaml
from tools import tool

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "terraform"

PROJECT_SPECIFIC = ("project_id", "region", "github_repository", "master_authorized_networks")
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")


# ------------------------------------------------------------------------------------ helpers




def _one(value):
    """hcl2 wraps attribute values in one-element lists; unwrap them."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _blocks(body: dict, name: str) -> list[dict]:
    return [b for b in body.get(name, []) if isinstance(b, dict)]


def load_tf(directory: Path) -> dict:
    """All top-level blocks of the *.tf files in `directory`, merged by block type."""
    merged: dict[str, list] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as fh:
            for key, blocks in hcl2.load(fh).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


def load_tf_text(text: str) -> dict:
    return hcl2.loads(text)


def resources(tf: dict, rtype: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for block in tf.get("resource", []):
        for name, body in block.get(rtype, {}).items():
            out[name] = body
    return out


def locals_(tf: dict) -> dict:
    out: dict = {}
    for block in tf.get("locals", []):
        out.update({k: _one(v) for k, v in block.items() if not k.startswith("__")})
    return out


def variables(tf: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for block in tf.get("variable", []):
        out.update(block)
    return out


def resolve(expr, tf: dict):
    """Resolve a `${local.a.b}` reference to its literal value; anything else is returned as is."""
    expr = _one(expr)
    if isinstance(expr, str):
        m = re.fullmatch(r"\$\{local\.([\w.]+)\}", expr)
        if m:
            value = locals_(tf)
            for part in m.group(1).split("."):
                value = _one(value)[part]
            return _one(value)
    return expr


def _pins(constraint: str) -> bool:
    """True for constraints with an upper bound: `~> X.Y[.Z]`, exact `X.Y.Z`, or `>= a, < b`."""
    parts = [p.strip() for p in constraint.split(",") if p.strip()]
    if not parts:
        return False
    if any(re.fullmatch(r"~>\s*\d+\.\d+(\.\d+)?", p) or re.fullmatch(r"=?\s*\d+\.\d+\.\d+", p) for p in parts):
        return True
    return any(p.startswith("<") for p in parts)


def provider_pin_problems(tf: dict) -> list[str]:
    problems = []
    found = False
    for tblock in tf.get("terraform", []):
        for rp in _blocks(tblock, "required_providers"):
            for name, spec in rp.items():
                if name.startswith("__"):
                    continue
                found = True
                spec = _one(spec)
                version = _one(spec.get("version")) if isinstance(spec, dict) else None
                if not version:
                    problems.append(f"provider {name}: no version constraint")
                elif not _pins(version):
                    problems.append(f"provider {name}: {version!r} does not pin (no upper bound)")
    if not found:
        problems.append("no required_providers block")
    return problems


def module_pin_problems(tf: dict) -> list[str]:
    problems = []
    for block in tf.get("module", []):
        for name, body in block.items():
            source = _one(body.get("source", ""))
            local = isinstance(source, str) and source.startswith(("./", "../"))
            if not local and not _one(body.get("version")):
                problems.append(f"module {name}: registry source {source!r} without version")
    return problems


def helm_release_problems(tf: dict) -> list[str]:
    problems = []
    for name, body in resources(tf, "helm_release").items():
        version = resolve(body.get("version"), tf)
        if not version:
            problems.append(f"helm_release {name}: no version")
        elif not (isinstance(version, str) and EXACT_VERSION.match(version)):
            problems.append(f"helm_release {name}: version {version!r} is not an exact chart version")
    return problems


def variable_problems(tf: dict) -> list[str]:
    problems = []
    for name, body in variables(tf).items():
        if not _one(body.get("type")):
            problems.append(f"variable {name}: no type")
        desc = _one(body.get("description"))
        if not (isinstance(desc, str) and desc.strip()):
            problems.append(f"variable {name}: no description")
        if name in PROJECT_SPECIFIC and "default" in body:
            problems.append(f"variable {name}: has a project-specific default")
    return problems


def helm_dependencies(tf: dict) -> dict[str, set[str]]:
    """helm_release name -> helm_release names it depends on, transitively."""
    direct = {}
    for name, body in resources(tf, "helm_release").items():
        refs = json.dumps(body.get("depends_on", []))
        direct[name] = set(re.findall(r"helm_release\.(\w+)", refs))
    closure = {}
    for name in direct:
        seen, todo = set(), list(direct[name])
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo.extend(direct.get(dep, ()))
        closure[name] = seen
    return closure


BROKEN_TF = """
terraform {
  required_providers {
    google = { source = "hashicorp/google", version = ">= 5.0" }
    helm   = { source = "hashicorp/helm" }
  }
}
module "net" {
  source = "terraform-google-modules/network/google"
}
variable "project_id" {
  type        = string
  description = "project"
  default     = "my-project"
}
variable "untyped" {
  description = "no type"
}
variable "undescribed" {
  type = string
}
resource "helm_release" "floating" {
  name  = "x"
  chart = "x"
}
resource "helm_release" "ranged" {
  name    = "y"
  chart   = "y"
  version = "~> 1.2"
}
"""


@pytest.fixture(scope="module")
def tf() -> dict:
    return load_tf(TF_DIR)


# ---------------------------------------------------------------------------- terraform fmt


def test_terraform_fmt_check():
    terraform = tool("terraform")
    proc = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(TF_DIR)], capture_output=True, text=True)
    assert proc.returncode == 0, f"terraform fmt would change files:\n{proc.stdout}{proc.stderr}"


def test_terraform_fmt_check_rejects_misformatted_file(tmp_path):
    terraform = tool("terraform")
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n    description="misaligned"\n}\n')
    proc = subprocess.run([terraform, "fmt", "-check", "-recursive", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode != 0


# ------------------------------------------------------------------------ structural rules


def test_rules_flag_a_broken_config():
    broken = load_tf_text(BROKEN_TF)
    assert any("google" in p and "does not pin" in p for p in provider_pin_problems(broken))
    assert any("helm: no version" in p for p in provider_pin_problems(broken))
    assert module_pin_problems(broken) == ["module net: registry source 'terraform-google-modules/network/google' without version"]
    helm = helm_release_problems(broken)
    assert any("floating: no version" in p for p in helm) and any("ranged" in p for p in helm)
    var = variable_problems(broken)
    assert "variable untyped: no type" in var
    assert "variable undescribed: no description" in var
    assert "variable project_id: has a project-specific default" in var


def test_providers_pinned_and_terraform_version(tf):
    assert provider_pin_problems(tf) == []
    providers = {name for t in tf["terraform"] for rp in _blocks(t, "required_providers") for name in rp if not name.startswith("__")}
    assert {"google", "google-beta", "kubernetes", "helm"} <= providers
    required = _one(tf["terraform"][0].get("required_version"))
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)(\.\d+)?", required or "")
    assert m and (int(m.group(1)), int(m.group(2))) >= (1, 5), required


def test_backend_is_gcs_with_partial_config(tf):
    backends = [b for t in tf["terraform"] for b in _blocks(t, "backend")]
    assert backends and "gcs" in backends[0]
    example = (TF_DIR / "backend.hcl.example").read_text()
    assert re.search(r'^bucket\s*=', example, re.M) and re.search(r'^prefix\s*=', example, re.M)


def test_modules_pinned(tf):
    assert module_pin_problems(tf) == []


def test_helm_releases_pinned_exactly(tf):
    assert helm_release_problems(tf) == []
    assert set(resources(tf, "helm_release")) >= {"cert_manager", "knative_operator", "knative_serving", "kserve_crd", "kserve"}


def test_local_chart_version_matches_its_chart_yaml(tf):
    release = resources(tf, "helm_release")["knative_serving"]
    chart = yaml.safe_load((TF_DIR / "charts" / "knative-serving" / "Chart.yaml").read_text())
    assert resolve(release["version"], tf) == chart["version"]
    assert "charts/knative-serving" in _one(release["chart"])


def test_variables_typed_described_no_project_defaults(tf):
    assert variable_problems(tf) == []
    declared = variables(tf)
    for name in PROJECT_SPECIFIC:
        assert name in declared, name


def test_tfvars_example_sets_every_variable_without_default(tf):
    example = hcl2.load((TF_DIR / "terraform.tfvars.example").open())
    required = {n for n, body in variables(tf).items() if "default" not in body}
    assert required <= set(example), required - set(example)
    assert set(example) <= set(variables(tf)), "example sets undeclared variables"


def test_helm_releases_in_dependency_order(tf):
    deps = helm_dependencies(tf)
    assert deps["knative_serving"] >= {"knative_operator"}
    assert deps["kserve_crd"] >= {"cert_manager"}
    assert deps["kserve"] >= {"kserve_crd", "cert_manager", "knative_serving", "knative_operator"}
    # nothing installs before what it needs, and there is no cycle
    assert all(name not in d for name, d in deps.items())


def test_kserve_defaults_to_knative_mode_behind_kourier(tf):
    kserve = json.dumps(resources(tf, "helm_release")["kserve"]["values"])
    assert re.search(r"deploymentMode\W+Knative", kserve), kserve
    assert re.search(r"disableIstioVirtualHost\W+true", kserve, re.I)
    template = (TF_DIR / "charts" / "knative-serving" / "templates" / "knativeserving.yaml").read_text()
    assert "kind: KnativeServing" in template
    assert "ingress-class: kourier.ingress.networking.knative.dev" in template
    assert re.search(r"kourier:\s*\n\s*enabled: true", template)


def test_gke_cluster_private_workload_identity_shielded(tf):
    (cluster,) = resources(tf, "google_container_cluster").values()
    assert _one(cluster["remove_default_node_pool"]) is True
    assert _one(cluster["enable_shielded_nodes"]) is True
    assert _one(_one(cluster["private_cluster_config"])["enable_private_nodes"]) is True
    pool = _one(_one(cluster["workload_identity_config"])["workload_pool"])
    assert pool.endswith(".svc.id.goog") and "var.project_id" in pool
    assert _one(_one(cluster["release_channel"])["channel"])
    assert _blocks(cluster, "master_authorized_networks_config")


def test_vpc_secondary_ranges_and_cloud_nat(tf):
    (subnet,) = resources(tf, "google_compute_subnetwork").values()
    ranges = {_one(r["range_name"]) for r in _blocks(subnet, "secondary_ip_range")}
    assert ranges == {"pods", "services"}
    (cluster,) = resources(tf, "google_container_cluster").values()
    policy = _one(cluster["ip_allocation_policy"])
    assert (_one(policy["cluster_secondary_range_name"]), _one(policy["services_secondary_range_name"])) == ("pods", "services")
    assert resources(tf, "google_compute_router") and resources(tf, "google_compute_router_nat")


def test_node_pools_written_once_autoscaled_hardened_and_gpu_optional(tf):
    """One google_container_node_pool over local.node_pools (for_each): the pools differ only in
    their entry of local.pool_specs; the shared body is hardened once for all of them."""
    pools = resources(tf, "google_container_node_pool")
    assert set(pools) == {"this"}, "one pool resource, for_each over the specs"
    pool = pools["this"]
    assert _one(pool["for_each"]) == "${local.node_pools}"
    assert _one(pool["name"]) == "${each.key}"
    assert _blocks(pool, "autoscaling")
    mgmt = _one(pool["management"])
    assert _one(mgmt["auto_repair"]) is True and _one(mgmt["auto_upgrade"]) is True
    node = _one(pool["node_config"])
    assert _one(_one(node["shielded_instance_config"])["enable_secure_boot"]) is True
    assert _one(_one(node["workload_metadata_config"])["mode"]) == "GKE_METADATA"
    assert _one(node["image_type"]) == "COS_CONTAINERD"
    # the pool label the manifests' nodeSelectors name is the spec's key
    assert _one(node["labels"]) == {"cloudmask.io/pool": "${each.key}"}
    dynamic = {k: v for d in node.get("dynamic", []) for k, v in d.items()}
    assert _one(dynamic["taint"]["for_each"]) == "${each.value.taints}"
    assert _one(dynamic["guest_accelerator"]["for_each"]) == "${each.value.accelerators}"

    specs = locals_(tf)["pool_specs"]
    assert set(specs) == {"system", "inference", "gpu"}
    for name in ("system", "inference"):
        assert specs[name]["settings"] == f"${{var.{name}_pool}}"
        assert specs[name]["taints"] == [] and specs[name]["accelerators"] == [], name
    gpu = specs["gpu"]
    assert gpu["settings"] == "${var.gpu_pool}"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in gpu["taints"]
    assert gpu["accelerators"] and gpu["zones"] == "${local.gpu_zones}"
    # the GPU pool exists only when enabled
    selected = locals_(tf)["node_pools"]
    assert "local.pool_specs" in selected and "var.gpu_pool.enabled" in selected, selected


def test_node_pools_moved_from_their_old_addresses(tf):
    """An existing state keeps its pools: each old address is moved to its for_each key."""
    moved = {_one(m["from"]): _one(m["to"]) for m in tf.get("moved", [])}
    assert moved == {
        "${google_container_node_pool.system}": '${google_container_node_pool.this["system"]}',
        "${google_container_node_pool.inference}": '${google_container_node_pool.this["inference"]}',
        "${google_container_node_pool.gpu[0]}": '${google_container_node_pool.this["gpu"]}',
    }
    assert set(locals_(tf)["pool_specs"]) == {m.split('"')[1] for m in moved.values()}


def test_registry_and_model_bucket(tf):
    (repo,) = resources(tf, "google_artifact_registry_repository").values()
    assert _one(repo["format"]) == "DOCKER"
    (bucket,) = resources(tf, "google_storage_bucket").values()
    assert _one(_one(bucket["versioning"])["enabled"]) is True
    assert _one(bucket["uniform_bucket_level_access"]) is True
    assert _one(bucket["public_access_prevention"]) == "enforced"


def test_storage_initializer_reads_models_through_workload_identity(tf):
    bucket_iam = resources(tf, "google_storage_bucket_iam_member")
    reader = bucket_iam["model_reader"]
    assert _one(reader["role"]) == "roles/storage.objectViewer"
    assert "google_service_account.model_reader" in _one(reader["member"])
    wi = resources(tf, "google_service_account_iam_member")["model_reader_workload_identity"]
    assert _one(wi["role"]) == "roles/iam.workloadIdentityUser"
    assert _one(wi["member"]) == "serviceAccount:${var.project_id}.svc.id.goog[${var.kserve_namespace}/${var.model_reader_ksa}]"
    ksa = resources(tf, "kubernetes_service_account_v1")["model_reader"]
    meta = _one(ksa["metadata"])
    assert _one(meta["name"]) == "${var.model_reader_ksa}"
    assert _one(meta["annotations"])["iam.gke.io/gcp-service-account"] == "${google_service_account.model_reader.email}"


def test_github_deploys_through_federation_without_keys(tf):
    assert not resources(tf, "google_service_account_key"), "no service account keys"
    provider = resources(tf, "google_iam_workload_identity_pool_provider")["github"]
    assert _one(_one(provider["oidc"])["issuer_uri"]) == "https://token.actions.githubusercontent.com"
    condition = _one(provider["attribute_condition"])
    assert "assertion.repository == '${var.github_repository}'" in condition
    assert "assertion.sub == 'repo:${var.github_repository}:ref:${var.github_deploy_ref}'" in condition
    federation = resources(tf, "google_service_account_iam_member")["deployer_federation"]
    assert _one(federation["role"]) == "roles/iam.workloadIdentityUser"
    assert _one(federation["member"]) == (
        "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_repository}"
    )

    deployer_roles = set()
    for rtype in ("google_project_iam_member", "google_storage_bucket_iam_member", "google_artifact_registry_repository_iam_member"):
        for body in resources(tf, rtype).values():
            if "google_service_account.deployer" in _one(body["member"]):
                deployer_roles.add(_one(body["role"]))
    assert deployer_roles == {"roles/artifactregistry.writer", "roles/container.developer", "roles/storage.objectAdmin"}


def test_outputs_cover_what_the_workflows_need(tf):
    names = {n for block in tf.get("output", []) for n in block}
    assert {
        "artifact_registry_url",
        "workload_identity_provider",
        "deployer_service_account",
        "model_bucket",
        "cluster_name",
        "cluster_location",
        "github_actions_variables",
    } <= names
    for block in tf["output"]:
        for name, body in block.items():
            assert _one(body.get("description")), f"output {name}: no description"


def test_namespace_and_service_account_match_the_kserve_manifests(tf):
    """The InferenceService must run as the Workload Identity KSA Terraform creates."""
    overlay = REPO / "kserve" / "overlays" / "prod"
    if not overlay.is_dir():
        missing("kserve/overlays/prod not present")
    kubectl = tool("kubectl")
    proc = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    isvcs = [d for d in yaml.safe_load_all(proc.stdout) if d and d.get("kind") == "InferenceService"]
    assert isvcs
    defaults = {n: _one(b.get("default")) for n, b in variables(tf).items()}
    for isvc in isvcs:
        accounts = {c.get("serviceAccountName") for c in isvc["spec"].values() if isinstance(c, dict)} - {None}
        assert defaults["model_reader_ksa"] in accounts, (accounts, defaults["model_reader_ksa"])
        ns = isvc["metadata"].get("namespace")
        assert ns in (None, defaults["kserve_namespace"]), ns


# --------------------------------------------------------------------------------- checkov


def _checkov(args: list[str], cwd: Path) -> dict:
    checkov = tool("checkov")
    proc = subprocess.run(
        [checkov, "--framework", "terraform", "--skip-download", "--output", "json", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov produced no JSON report (rc={proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if isinstance(report, list):  # one report per framework
        (report,) = [r for r in report if r.get("check_type") == "terraform"]
    return report


def test_checkov_passes_with_only_justified_skips():
    report = _checkov(["--directory", str(TF_DIR)], REPO)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 40, summary  # the GKE/GCS/IAM policies really ran
    for skipped in report["results"]["skipped_checks"]:
        reason = (skipped.get("check_result") or {}).get("suppress_comment") or skipped.get("suppress_comment") or ""
        assert len(reason.strip()) > 10, f"unjustified skip {skipped['check_id']}: {reason!r}"
    # every inline skip in the sources carries a reason, not just those checkov reported
    for path in TF_DIR.rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"#checkov:skip=CKV2?_[A-Z]+_\d+:\s*\S.{10,}", line), f"{path.name}: {line.strip()}"


def _rendered_provider(name: str = "github", condition_override: str | None = None) -> str:
    """iam.tf's GitHub OIDC provider with the variables filled from terraform.tfvars.example."""
    text = (TF_DIR / "iam.tf").read_text()
    start = text.index('resource "google_iam_workload_identity_pool_provider" "github"')
    end = text.index("\n}\n", start) + 3
    block = "\n".join(line for line in text[start:end].splitlines() if "checkov:skip" not in line) + "\n"
    example = hcl2.load((TF_DIR / "terraform.tfvars.example").open())
    values = {n: _one(b.get("default")) for n, b in variables(load_tf(TF_DIR)).items()}
    values.update({k: _one(v) for k, v in example.items()})
    block = re.sub(r"\$\{var\.(\w+)\}", lambda m: str(values[m.group(1)]), block)
    block = block.replace("${google_iam_workload_identity_pool.github.workload_identity_pool_id}", "github-actions")
    block = block.replace('"github" {', f'"{name}" {{', 1)
    if condition_override is not None:
        block = re.sub(r'attribute_condition = ".*"', f'attribute_condition = "{condition_override}"', block)
    return block


def test_github_trust_condition_passes_checkov_once_rendered(tmp_path):
    """checkov cannot resolve var.github_repository (no default), hence the inline skip of
    CKV_GCP_125 in iam.tf; here the check runs on the condition rendered with real values,
    next to an owner-wide condition that must fail it."""
    rendered = _rendered_provider()
    assert "assertion.sub == 'repo:my-org/cloudmask:ref:refs/heads/main'" in rendered
    weak = _rendered_provider("weak", "assertion.repository_owner == 'my-org'")
    (tmp_path / "wif.tf").write_text(rendered + "\n" + weak)
    report = _checkov(["--directory", str(tmp_path), "--check", "CKV_GCP_125"], tmp_path)
    passed = {c["resource"] for c in report["results"]["passed_checks"]}
    failed = {c["resource"] for c in report["results"]["failed_checks"]}
    assert passed == {"google_iam_workload_identity_pool_provider.github"}, (passed, failed)
    assert failed == {"google_iam_workload_identity_pool_provider.weak"}, (passed, failed)


# ------------------------------------------------------------------ local chart (knative-serving)

CHART = TF_DIR / "charts" / "knative-serving"
TEMPLATE_TAG = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def render_chart(values: dict, namespace: str = "knative-serving") -> list[dict]:
    """Render terraform/charts/knative-serving without helm, which is not installed here.

    Supports exactly the constructs the chart uses - `.Values.x`, `.Values.x | quote`,
    `.Release.Namespace`, `if .Values.x` ... `end`, comments and `-` whitespace trimming - and
    raises on anything else, so a template this cannot render fails the test rather than
    passing unchecked.
    """
    out = []
    for path in sorted((CHART / "templates").glob("*.yaml")):
        text, pos, parts, skipping = path.read_text(), 0, [], []
        for m in TEMPLATE_TAG.finditer(text):
            literal = text[pos:m.start()]
            if m.group(1):
                literal = literal.rstrip()
            if not any(skipping):
                parts.append(literal)
            pos = m.end()
            if m.group(3):
                while pos < len(text) and text[pos] in " \t\r\n":
                    pos += 1
            action = m.group(2)
            if action.startswith("/*"):
                continue
            if (cond := re.fullmatch(r"if \.Values\.(\w+)", action)):
                skipping.append(not values.get(cond.group(1)))
            elif action == "end":
                skipping.pop()
            elif action == ".Release.Namespace":
                parts.append("" if any(skipping) else namespace)
            elif (ref := re.fullmatch(r"\.Values\.(\w+)( \| quote)?", action)):
                value = values[ref.group(1)]
                if not any(skipping):
                    parts.append(json.dumps(str(value)) if ref.group(2) else str(value))
            else:
                raise AssertionError(f"{path.name}: template action this test cannot render: {action!r}")
        assert not skipping, f"{path.name}: unbalanced if/end"
        parts.append(text[pos:])
        out.extend(d for d in yaml.safe_load_all("".join(parts)) if d)
    return out


def test_knative_serving_chart_renders_kourier_serving_and_a_readiness_wait():
    import kubernetes_validate

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    values.update(domain="203.0.113.7.sslip.io", ingressAddressName="cloudmask-ingress")
    docs = render_chart(values)
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"KnativeServing", "ServiceAccount", "Role", "RoleBinding", "Job"}

    spec = by_kind["KnativeServing"]["spec"]
    assert spec["version"] == values["servingVersion"]
    assert spec["ingress"]["kourier"] == {"enabled": True, "service-type": "LoadBalancer"}
    assert spec["config"]["network"]["ingress-class"] == "kourier.ingress.networking.knative.dev"
    assert spec["config"]["domain"] == {"203.0.113.7.sslip.io": ""}
    assert spec["services"] == [{"name": "kourier", "annotations": {"networking.gke.io/load-balancer-ip-addresses": "cloudmask-ingress"}}]
    # the fields kserve/ overlays use must be switched on in Knative
    for feature in ("kubernetes.podspec-nodeselector", "kubernetes.podspec-tolerations", "kubernetes.podspec-securitycontext"):
        assert spec["config"]["features"][feature] == "enabled", feature

    job = by_kind["Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["wait", "--for=condition=Ready", "knativeserving/knative-serving"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for doc in docs:
        if doc["kind"] != "KnativeServing":
            kubernetes_validate.validate(doc, kubernetes_validate.utils.latest_version(), strict=True)

    # without a reserved address the Service override disappears and the YAML stays valid
    values.update(ingressAddressName="")
    assert "services" not in {d["kind"]: d for d in render_chart(values)}["KnativeServing"]["spec"]


def test_chart_renderer_refuses_constructs_it_does_not_know(tmp_path, monkeypatch):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.yaml").write_text("a: {{ include \"x\" . }}\n")
    monkeypatch.setattr(sys.modules[__name__], "CHART", tmp_path)
    with pytest.raises(AssertionError, match="cannot render"):
        render_chart({})
