"""The import graph matches the layers the README describes: the components (transformer/, predictor/) stand on the
library (cloudmask/), never the other way round; the raster maths stands on the contract alone; kserve is reached
from the library only through cloudmask.kserve_compat; transformer/ is the kserve adapter and nothing more."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("transformer", "predictor")


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports included), relative ones resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _files(top: str):
    return sorted((ROOT / top).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", _files("cloudmask"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_never_imports_a_component(path):
    wrong = sorted(m for m in imports(path) if _top(m) in COMPONENTS + ("bench", "tests"))
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}: the library must not stand on a component"


@pytest.mark.parametrize("path", _files("cloudmask"), ids=lambda p: str(p.relative_to(ROOT)))
def test_kserve_only_through_kserve_compat(path):
    if path.name == "kserve_compat.py":
        return
    wrong = sorted(m for m in imports(path) if _top(m) == "kserve")
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}: kserve belongs in cloudmask/kserve_compat.py"


@pytest.mark.parametrize("path", _files("cloudmask/raster"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_raster_maths_stands_on_the_contract_alone(path):
    ok = ("cloudmask", "cloudmask.contract", "cloudmask.raster")
    wrong = sorted(m for m in imports(path) if _top(m) == "cloudmask" and m not in ok
                   and not m.startswith(("cloudmask.raster.", "cloudmask.contract.")))
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}: cloudmask.raster is the lowest layer above the contract"


def test_components_do_not_import_each_other():
    for a in COMPONENTS:
        for path in _files(a):
            wrong = sorted(m for m in imports(path) if _top(m) in COMPONENTS and _top(m) != a)
            assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_components_stand_on_the_library():
    for a in COMPONENTS:
        assert any(_top(m) == "cloudmask" for p in _files(a) for m in imports(p)), a


def test_the_transformer_is_only_the_kserve_adapter():
    """model (the kserve.Model), request and uri_input (reading the V2 request's inputs), hop (the predictor call)."""
    assert {p.name for p in _files("transformer")} == {"__init__.py", "__main__.py", "model.py", "request.py", "hop.py",
                                                       "uri_input.py"}


def test_imports_are_found():
    """The checker itself: it sees function-level and relative imports."""
    found = imports(ROOT / "transformer" / "model.py")
    assert "cloudmask.raster.tile" in found and "kserve" in found
    assert "transformer.model.CloudMaskTransformer" in imports(ROOT / "transformer" / "__main__.py")


@pytest.mark.parametrize("component,forbidden", [("predictor", ("rasterio", "osgeo")),
                                                 ("transformer", ("tensorflow", "keras"))])
def test_a_component_loads_without_the_other_images_stack(component, forbidden):
    """The images leave GDAL out of the predictor and TensorFlow out of the transformer (tests/deploy/test_images.py):
    what a component imports from the library at start-up must not need them."""
    import subprocess
    import sys

    code = (f"import sys, {component}.__main__, {component}.model; "
            f"bad = [m for m in {forbidden!r} if m in sys.modules]; assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]

