"""Static checks of the project's own Python: undefined names, unused imports, syntax errors (ruff)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_pyflakes_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F,E9", "--exclude", ".venv,.cache",
                          "--output-format", "concise", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
