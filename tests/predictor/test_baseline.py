"""The spectral-test baseline, exported and reloaded as the predictor loads it, on pixels whose
answer a remote-sensing textbook gives."""

from __future__ import annotations

import numpy as np
import pytest

from cloudmask import contract
from predictor import baseline
from cloudmask.savedmodel import Runner, discover

# reflectance of B02, B03, B04, B08, B11, B12
PIXELS = {
    "thick cloud": ([0.45, 0.44, 0.45, 0.50, 0.35, 0.25], contract.CLOUD),
    "snow": ([0.60, 0.62, 0.63, 0.60, 0.05, 0.04], contract.CLEAR),  # NDSI 0.85: bright, dark in SWIR
    "vegetation": ([0.03, 0.06, 0.04, 0.35, 0.18, 0.09], contract.CLEAR),
    "bare soil": ([0.10, 0.14, 0.18, 0.25, 0.32, 0.28], contract.CLEAR),
    "shadow on land": ([0.03, 0.035, 0.03, 0.07, 0.05, 0.03], contract.SHADOW),
    "clear water": ([0.06, 0.05, 0.03, 0.01, 0.005, 0.003], contract.CLEAR),  # NDWI 0.67
}


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for m in (contract.BASELINE_6B, contract.BASELINE_4B):
        baseline.export(m, root)
    return {m.contract.name: (m, Runner(m.path)) for m in discover(root)}


def _image(values, n_bands):
    x = np.zeros((1, 16, 16, n_bands), np.float32)
    x[...] = np.asarray(values[:n_bands], np.float32)
    return x


@pytest.mark.parametrize("name", list(PIXELS))
def test_six_band_rules(runners, name):
    values, want = PIXELS[name]
    md, run = runners["baseline-6b"]
    probs = run(_image(values, 6))
    assert probs.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert int(np.argmax(probs[0, 8, 8])) == want, probs[0, 8, 8]


def test_four_band_variant_finds_cloud_and_cannot_tell_snow(runners):
    """Without SWIR there is no NDSI: snow looks like cloud. That is the point of the 6-band model."""
    md, run = runners["baseline-4b"]
    assert md.contract.bands == contract.BANDS_4
    assert int(np.argmax(run(_image(PIXELS["thick cloud"][0], 4))[0, 0, 0])) == contract.CLOUD
    assert int(np.argmax(run(_image(PIXELS["snow"][0], 4))[0, 0, 0])) == contract.CLOUD
    assert int(np.argmax(run(_image(PIXELS["vegetation"][0], 4))[0, 0, 0])) == contract.CLEAR


def test_export_writes_contract_and_serving_signature(runners):
    md, run = runners["baseline-6b"]
    assert md.version == "1"
    assert md.card["kind"] == "spectral-test baseline"
    assert (run.n_bands, run.output_key) == (6, "output_0")
