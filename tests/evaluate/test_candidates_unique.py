"""Two model folders with the same name and version would overwrite each other's results: refused."""

import shutil
from pathlib import Path

import pytest

from cloudmask.evaluate.candidates import candidates  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_same_model_and_version_twice_is_refused(tmp_path):
    for d in ("a", "b"):
        shutil.copytree(MODELS / "baseline-4b" / "1", tmp_path / d / "1")
    with pytest.raises(ValueError, match="baseline-4b v1"):
        candidates(tmp_path, peers=False)
