"""Peers: ukis-csmask's ONNX U-Nets (shipped in its PyPI package, so these run offline) and, when its weights
are in ../shared, DL-L8S2-UV."""

from __future__ import annotations

import numpy as np
import pytest
from ci import missing

from cloudmask import contract, peers

UKIS_NAMES = ["blue", "green", "red", "nir", "swir16", "swir22"]


@pytest.fixture(scope="module")
def reflectance():
    """(1, 256, 256, 6) reflectance in contract band order: noisy ground with a bright block and a dark one."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.02, 0.3, (1, 256, 256, 6)).astype(np.float32)
    x[0, 40:120, 40:160] = rng.uniform(0.55, 0.7, (80, 120, 6))
    x[0, 150:200, 60:180] = rng.uniform(0.0, 0.04, (50, 120, 6))
    return x


def test_model_choice():
    assert peers.ukis_model_name(contract.BANDS_6) == "model_6b_l2a"
    assert peers.ukis_model_name(contract.BANDS_4, "L1C") == "model_4b_l1c"
    assert peers.ukis_model_name(contract.DEFAULT_BANDS_BY_COUNT[12], "l1c") == "model_6b_l1c"
    assert peers.ukis_model_name(("B02", "B03", "B04")) is None
    assert peers.ukis_session(("B02", "B03", "B04")) is None
    with pytest.raises(ValueError):
        peers.ukis_model_name(contract.BANDS_4, "l3")


def test_ukis_probabilities_shape_and_sum(reflectance):
    run = peers.ukis_session(contract.BANDS_6)
    p = run(reflectance)
    assert p.shape == (1, 256, 256, 3) and p.dtype == np.float32
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-5)
    assert run.name == "ukis-csmask 6b L2A" and run.version == "1.0.0-6BL2A"


def test_ukis_matches_the_package_own_mask(reflectance):
    """Our probabilities' argmax equals what ukis_csmask.CSmask itself returns (same classes, bands, normalisation)."""
    from ukis_csmask.mask import CSmask

    for level in ("l1c", "l2a"):
        p = peers.ukis_session(contract.BANDS_6, level, threads=2)(reflectance)
        ref = CSmask(reflectance[0].copy(), UKIS_NAMES, product_level=level, intra_op_num_threads=2).csm[..., 0]
        assert (p[0].argmax(-1) == ref).mean() > 0.999


def test_ukis_reads_bands_by_name_not_position(reflectance):
    """A caller whose channels come in another order gets the same answer: the peer maps by band name."""
    order = ("B12", "B08", "B02", "B11", "B04", "B03")
    idx = [contract.BANDS_6.index(b) for b in order]
    shuffled = peers.ukis_session(order)(reflectance[..., idx])
    straight = peers.ukis_session(contract.BANDS_6)(reflectance)
    np.testing.assert_allclose(shuffled, straight, atol=1e-6)
    four = peers.ukis_session(contract.BANDS_4)(reflectance[..., :4])  # the 10 m bands alone: the 4-band net
    assert four.shape == straight.shape and not np.allclose(four, straight)


def test_ukis_rejects_wrong_band_count(reflectance):
    with pytest.raises(ValueError):
        peers.ukis_session(contract.BANDS_4)(reflectance)


def test_dl_l8s2_uv_cloud_only():
    """Explicitly about ../shared/peers: skips when the weights are not there (fails under CI)."""
    if not (peers.dl_l8s2_uv_dir() / peers.DL_L8S2_UV_FILES[contract.BANDS_4]).is_file():
        missing("DL-L8S2-UV weights not in ../shared/peers")
    run = peers.dl_l8s2_uv_session(contract.BANDS_4)
    x = np.full((2, 64, 96, 4), 0.05, np.float32)
    x[1] = 0.6  # bright and white everywhere
    p = run(x)
    assert p.shape == (2, 64, 96, 3)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
    assert np.all(p[..., 2] == 0)  # no shadow class
    assert p[1, ..., 1].mean() > p[0, ..., 1].mean()
