"""Augmentations keep image and label aligned and stay physical."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudmask.contract import BANDS_6
from cloudmask.train import augment


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_geometric_moves_label_with_image(seed):
    rng = np.random.default_rng(seed)
    img = rng.random((24, 40, 3)).astype(np.float32)
    lab = (img[..., 0] > 0.5).astype(np.uint8) + 2 * (img[..., 1] > 0.7).astype(np.uint8)
    gi, gl = augment.geometric(np.random.default_rng(seed + 1), img, lab)
    assert gi.shape[:2] == gl.shape
    np.testing.assert_array_equal(gl, (gi[..., 0] > 0.5).astype(np.uint8) + 2 * (gi[..., 1] > 0.7).astype(np.uint8))
    # It is a permutation of pixels: same multiset of values.
    np.testing.assert_array_equal(np.sort(gi.ravel()), np.sort(img.ravel()))


def test_to_level_adds_more_path_radiance_in_blue():
    img = np.full((8, 8, 6), 0.2, np.float32)
    seen = 0
    for seed in range(40):
        out = augment.to_level(np.random.default_rng(seed), img, BANDS_6, "L2A")[0]
        if np.allclose(out, img):
            continue
        seen += 1
        d = out[0, 0] - img[0, 0]
        assert d[0] > d[5]  # blue (B02) gains more than SWIR (B12): Rayleigh ~ lambda^-4
    assert seen > 5


def test_to_level_l1c_to_l2a_never_negative():
    img = np.full((8, 8, 6), 0.01, np.float32)
    for seed in range(40):
        assert augment.to_level(np.random.default_rng(seed), img, BANDS_6, "L1C")[0].min() >= 0


def test_radiometric_range_and_shape():
    img = np.random.default_rng(0).random((16, 16, 6)).astype(np.float32)
    out = augment.radiometric(np.random.default_rng(1), img)
    assert out.shape == img.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


def test_to_level_path_radiance_is_what_was_added():
    img = np.full((32, 32, 6), 0.1, np.float32)
    for seed in range(40):
        out, path = augment.to_level(np.random.default_rng(seed), img, BANDS_6, "L2A")
        assert path.shape == (6,) and np.all(path >= 0)
        # a TOA look is (surface x transmittance + path); the transmittance is 0.9..1
        surf = (out - path) / img
        assert np.all((surf > 0.9 - 1e-5) & (surf < 1.0 + 1e-5))


def test_dark_object_path_is_capped():
    rng = np.random.default_rng(0)
    img = rng.uniform(0.3, 0.6, (50, 50, 6)).astype(np.float32)  # no dark object at all
    p = augment.dark_object_path(img, BANDS_6)
    assert np.all(p <= np.array([augment.PATH_RADIANCE[b][1] for b in BANDS_6]) + 1e-7)
    img[:10, :10] = 0.02  # water (4 % of the pixels): its blue is mostly air
    assert augment.dark_object_path(img, BANDS_6)[0] == pytest.approx(0.02, abs=1e-6)
