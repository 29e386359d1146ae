"""Dockerfile.predictor, Dockerfile.transformer, .dockerignore and the pins in requirements/.

No Docker engine runs here, so no image is built. What stands in: hadolint and checkov lint both
Dockerfiles (a mutated copy proves hadolint is live), dockerfile-parse reads their structure, the
build context is computed from .dockerignore with docker-py's own matcher, and the pinned
requirement files are checked against pyproject.toml and against the installed packages' metadata.
The images themselves run `pip check` at build time, which fails on an incomplete closure.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from docker.utils.build import exclude_paths
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from tools import tool

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("predictor", "transformer")
BASE = re.compile(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}")
# Packages that must stay out of an image: TensorFlow's stack out of the transformer, GDAL's out
# of the predictor.
FORBIDDEN = {
    "transformer": {"tensorflow", "tensorflow-cpu", "tensorflow-intel", "keras", "tensorboard", "tf-keras"},
    "predictor": {"rasterio", "gdal", "fiona"},
}




def dockerfile(image: str) -> DockerfileParser:
    parser = DockerfileParser(fileobj=open(ROOT / f"Dockerfile.{image}", "rb"))
    return parser


def stages(image: str) -> list[list[dict]]:
    """The instructions of each build stage, in order."""
    out: list[list[dict]] = []
    for ins in dockerfile(image).structure:
        if ins["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def values(stage: list[dict], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def pins(image: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements" / f"{image}.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert m, f"requirements/{image}.txt: {line!r} is not an exact pin"
        out[canonicalize_name(m[1])] = m[2]
    return out


def extra_requirements(extra: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"][extra]]


# --- linters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_finds_nothing(image):
    out = subprocess.run([tool("hadolint"), "--format", "json", "--failure-threshold", "style",
                          str(ROOT / f"Dockerfile.{image}")], capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout or "[]") == [] and out.returncode == 0, out.stdout + out.stderr


def test_hadolint_would_catch_a_root_user(tmp_path):
    """The same linter run on a copy whose last USER is root fails (DL3002)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(re.sub(r"^USER .*$", "USER root", (ROOT / "Dockerfile.predictor").read_text(), flags=re.M))
    out = subprocess.run([tool("hadolint"), "--format", "json", str(bad)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0
    assert "DL3002" in {f["code"] for f in json.loads(out.stdout)}


@pytest.fixture(scope="module")
def checkov_dockerfiles() -> dict:
    """One checkov run (framework dockerfile) over both Dockerfiles."""
    cmd = [tool("checkov"), "--framework", "dockerfile", "--output", "json", "--compact", "--skip-download"]
    for image in IMAGES:
        cmd += ["-f", str(ROOT / f"Dockerfile.{image}")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.stdout.strip(), out.stderr
    reports = json.loads(out.stdout)
    (report,) = reports if isinstance(reports, list) else [reports]
    return report


def test_checkov_passes_on_both_dockerfiles(checkov_dockerfiles):
    results = checkov_dockerfiles["results"]
    assert checkov_dockerfiles["summary"]["parsing_errors"] == 0
    assert [(f["check_id"], f["file_path"]) for f in results["failed_checks"]] == []
    # no suppressions: any later skip needs a `# checkov:skip=CKV_DOCKER_n: reason` and a test change
    assert results.get("skipped_checks", []) == []
    scanned = {Path(f["file_path"]).name for f in results["passed_checks"]}
    assert scanned == {f"Dockerfile.{image}" for image in IMAGES}
    assert {"CKV_DOCKER_2", "CKV_DOCKER_3", "CKV_DOCKER_7", "CKV_DOCKER_8"} <= {
        f["check_id"] for f in results["passed_checks"]}


# --- structure --------------------------------------------------------------------------------


@pytest.mark.parametrize("image", IMAGES)
def test_multi_stage_on_one_pinned_slim_base(image):
    froms = [s[0]["value"].split() for s in stages(image)]
    assert len(froms) >= 2
    assert all(BASE.fullmatch(f[0]) for f in froms), froms
    assert len({f[0] for f in froms}) == 1
    assert froms[0][1:] == ["AS", "builder"]


def pip_installs(image: str) -> list[list[str]]:
    """The arguments of every `pip install` in the Dockerfile's RUN instructions."""
    out = []
    for stage in stages(image):
        for run in values(stage, "RUN"):
            for part in re.split(r"&&|;", run):
                words = part.split()
                if words[:2] == ["pip", "install"]:
                    out.append(words[2:])
    return out


@pytest.mark.parametrize("image", IMAGES)
def test_builder_installs_only_the_pins_and_the_project_wheel(image):
    """pip installs exactly two things: the exact pins of this image (wheels only, no resolving)
    and the project's own wheel built in the same stage; then `pip check` proves the pins closed."""
    installs = pip_installs(image)
    assert len(installs) == 2, installs
    pinned, project = installs
    assert pinned[-2:] == ["-r", f"requirements/{image}.txt"]
    assert {"--no-deps", "--only-binary=:all:", "--no-cache-dir"} <= set(pinned)
    assert project[-1] == "/wheels/cloudmask-*.whl" and "--no-deps" in project
    builder = " ".join(values(stages(image)[0], "RUN"))
    assert "pip wheel" in builder and builder.rstrip().endswith("pip check")
    assert f"requirements/{image}.txt requirements/{image}.txt" in values(stages(image)[0], "COPY")


@pytest.mark.parametrize("image", IMAGES)
def test_final_stage_is_lean_non_root_and_serves_on_the_model_server_ports(image):
    final = stages(image)[-1]
    user = values(final, "USER")
    assert user, "the final stage sets no USER"
    uid, _, gid = user[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 10000 and (not gid or int(gid) > 0)
    assert sorted(" ".join(values(final, "EXPOSE")).split()) == ["8080", "8081"]
    assert json.loads(values(final, "ENTRYPOINT")[-1]) == ["python", "-m", image]
    # Only the built venv comes from the builder; nothing is compiled or installed here.
    assert [c for c in values(final, "COPY") if c.startswith("--from=")] == ["--from=builder /opt/venv /opt/venv"]
    final_text = " ".join(values(final, "RUN"))
    assert not re.search(r"\b(pip|apt-get|apt|gcc|make)\b", final_text), final_text
    assert values(final, "HEALTHCHECK")


def test_predictor_image_bundles_the_model_and_serves_it_by_default():
    final = stages("predictor")[-1]
    copies = [c.split() for c in values(final, "COPY") if not c.startswith("--from=")]
    assert ["models/", "/opt/cloudmask/models/"] in copies
    assert json.loads(values(final, "CMD")[-1]) == ["--model_dir=/opt/cloudmask/models",
                                                     "--fallback_model_dir=/opt/cloudmask/models"]


@pytest.mark.parametrize("image", IMAGES)
def test_each_image_copies_only_its_own_component(image):
    other = next(i for i in IMAGES if i != image)
    sources = [c.split()[0] for stage in stages(image) for c in values(stage, "COPY") if not c.startswith("--from=")]
    assert f"{image}/" in sources and f"{other}/" not in sources


# --- pins -------------------------------------------------------------------------------------


@pytest.mark.parametrize("image", IMAGES)
def test_pins_leave_out_the_other_components_stack(image):
    assert not FORBIDDEN[image] & set(pins(image))


@pytest.mark.parametrize("image", IMAGES)
def test_pins_satisfy_the_extra_in_pyproject(image):
    pinned = pins(image)
    for req in extra_requirements(image):
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req} is not pinned in requirements/{image}.txt"
        assert req.specifier.contains(Version(pinned[name]), prereleases=True), (str(req), pinned[name])


@pytest.mark.parametrize("image", IMAGES)
def test_pins_are_closed_under_their_requirements(image):
    """Every requirement of every pinned distribution is pinned too, at a version it accepts, for
    each pinned distribution installed here at that very version (so its metadata is the pinned
    one's); the extra's own top-level packages must be among them."""
    pinned = pins(image)
    checked = set()
    for name, version in pinned.items():
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        checked.add(name)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            assert dep in pinned, f"{name}=={version} needs {req}, not pinned"
            assert req.specifier.contains(Version(pinned[dep]), prereleases=True), (name, str(req), pinned[dep])
    must = {canonicalize_name(r.name) for r in extra_requirements(image) if "==" in str(r.specifier)}
    assert must <= checked, f"not installed at the pinned version here: {must - checked}"


# --- build context ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def context() -> set[str]:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    return {p.replace("\\", "/") for p in exclude_paths(str(ROOT), patterns)}


@pytest.mark.parametrize("image", IMAGES)
def test_context_holds_every_copy_source(image, context):
    for stage in stages(image):
        for copy in values(stage, "COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _dest = copy.split()
            for src in sources:
                src = src.rstrip("/")
                assert (ROOT / src).exists(), f"Dockerfile.{image}: COPY {src}: no such path in the repo"
                inside = src in context or any(p.startswith(src + "/") for p in context)
                assert inside, f"Dockerfile.{image}: COPY {src}: excluded by .dockerignore"


def test_context_leaves_out_everything_else(context):
    top = {p.split("/")[0] for p in context}
    assert top <= {"pyproject.toml", "README.md", "requirements", "cloudmask", "predictor", "transformer",
                   "models", ".dockerignore"}, top
    assert not [p for p in context if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in context if p.startswith("requirements/") and not p.endswith(".txt")]


def test_context_carries_a_bundled_model(context):
    models = {p.split("/")[1] for p in context if re.fullmatch(r"models/[^/]+/[^/]+/saved_model\.pb", p)}
    with_contract = {p.split("/")[1] for p in context if re.fullmatch(r"models/[^/]+/[^/]+/contract\.json", p)}
    assert models and models <= with_contract, (models, with_contract)
