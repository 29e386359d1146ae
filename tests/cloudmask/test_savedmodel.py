"""Model discovery: <root>/<name>/<version>/ with contract.json; the highest version is served."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cloudmask import contract
from predictor import baseline
from cloudmask.savedmodel import Runner, discover


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    baseline.export(contract.BASELINE_4B, root, version="1")
    baseline.export(contract.BASELINE_4B, root, version="2")
    baseline.export(contract.BASELINE_6B, root, version="10")
    baseline.export(contract.BASELINE_6B, root, version="9")
    return root


def test_highest_numeric_version_of_each_model(exported):
    found = {m.contract.name: m.version for m in discover(exported)}
    assert found == {"baseline-4b": "2", "baseline-6b": "10"}  # 10 > 9 numerically, not as text


def test_a_version_folder_is_served_alone(exported):
    """What a canary's storageUri may point at: one <name>/<version>/ folder."""
    found = discover(exported / "baseline-6b" / "9")
    assert [(m.contract.name, m.version) for m in found] == [("baseline-6b", "9")]


def test_folders_without_contract_are_ignored(exported, tmp_path):
    (tmp_path / "junk" / "1").mkdir(parents=True)
    assert discover(tmp_path) == []


def test_contract_round_trip(exported):
    m = discover(exported / "baseline-4b" / "2")[0]
    assert m.contract == contract.BASELINE_4B
    raw = json.loads((m.path / contract.CONTRACT_FILE).read_text())
    assert raw["bands"] == list(contract.BANDS_4) and raw["version"] == "2"


def test_runner_any_multiple_of_16(exported):
    run = Runner(discover(exported / "baseline-4b" / "2")[0].path)
    for h, w in ((16, 16), (48, 80), (128, 32)):
        out = run(np.random.default_rng(0).random((2, h, w, 4), dtype=np.float32))
        assert out.shape == (2, h, w, 3) and out.dtype == np.float32
