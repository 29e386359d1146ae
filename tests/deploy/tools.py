"""Finding the offline checkers the deploy tests run (one place for all of them)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ci import missing


def tool(name: str, why: str = "") -> str:
    """Path of a command-line tool: next to this Python (the dev extra's console scripts), else on
    PATH. Missing: the test fails under CI=true (CI must provide it) and is skipped elsewhere."""
    beside = Path(sys.executable).with_name(name)
    path = str(beside) if beside.exists() else shutil.which(name)
    if path:
        return path
    msg = f"`{name}` is not installed" + (f" ({why})" if why else "")
    missing(msg + " (make install)")
