"""Skip or fail: what a test does when something it needs is not on this machine.

On a developer machine it skips (saying what is missing); under CI=true it fails, because CI must provide
everything (a skip there would let a test pass without testing). tests/conftest.py offers it as the
`missing` fixture too; modules import it as `from ci import missing`.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(msg: str) -> None:
    """Skip with `msg`; under CI=true fail with it instead."""
    if in_ci():
        pytest.fail(f"{msg}; CI must provide it")
    pytest.skip(msg)
