"""Synthetic clouds: the labels are exactly what was composited, and nothing else in the image changes."""

import numpy as np
import pytest

from cloudmask.contract import BANDS_4, BANDS_6, CLEAR, CLOUD, SHADOW
from cloudmask.train import synth


def _ground(rng, h=96, w=128, b=6):
    return rng.uniform(0.02, 0.35, size=(h, w, b)).astype(np.float32)


def test_fractal_noise_range_and_shape():
    n = synth.fractal_noise(np.random.default_rng(0), (64, 80), beta=3.0)
    assert n.shape == (64, 80) and n.dtype == np.float32
    assert n.min() == pytest.approx(0.0, abs=1e-6) and n.max() == pytest.approx(1.0, abs=1e-6)


def test_shift_moves_without_wrap():
    a = np.zeros((10, 10), np.float32)
    a[2, 3] = 1
    assert synth._shift(a, 4, -2)[6, 1] == 1 and synth._shift(a, 4, -2).sum() == 1
    assert synth._shift(a, -5, 0).sum() == 0  # pushed off the top: gone, not wrapped to the bottom


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("bands", [BANDS_6, BANDS_4])
def test_labels_match_composite(seed, bands):
    rng = np.random.default_rng(seed)
    ground = _ground(rng, b=len(bands))
    params = synth.sample_params(rng)
    params.with_shadow = True
    comp = synth.add_clouds(rng, ground, bands, params)
    cloud = comp.opacity > synth.CLOUD_THRESHOLD
    shadow = (comp.footprint > synth.SHADOW_THRESHOLD) & ~cloud
    np.testing.assert_array_equal(comp.label == CLOUD, cloud)
    np.testing.assert_array_equal(comp.label == SHADOW, shadow)
    np.testing.assert_array_equal(comp.label == CLEAR, ~cloud & ~shadow)
    assert comp.image.shape == ground.shape and comp.image.dtype == np.float32
    untouched = (comp.opacity == 0) & (comp.shadow == 0)
    np.testing.assert_array_equal(comp.image[untouched], ground[untouched])
    # Shadow-only pixels are darker in every band; thick-cloud pixels differ from the ground.
    only_shadow = (comp.shadow > 0.1) & (comp.opacity == 0)
    assert np.all(comp.image[only_shadow] < ground[only_shadow])
    assert np.all(np.any(comp.image[cloud] != ground[cloud], axis=-1))


def test_cloud_signature_swir_within_water_cloud_ranges_for_thick_cloud():
    level = 0.7
    for seed in range(200):
        refl, gamma = synth.cloud_signature(np.random.default_rng(seed), BANDS_6, level=level, thick=True)
        vnir, b11, b12 = refl[:4], refl[4], refl[5]
        assert np.all((vnir / level >= 0.97 - 1e-6) & (vnir / level <= 1.05 * 1.03 + 1e-6))  # flat VNIR, blue a little brighter
        lo11, hi11 = synth.SWIR_WATER["B11"]
        lo12, hi12 = synth.SWIR_WATER["B12"]
        assert lo11 * level <= b11 <= hi11 * level and lo12 * level <= b12 <= hi12 * level
        assert np.all(gamma == 1.0)  # thick clouds are opaque in every band


def test_cloud_signature_swir_spans_small_and_large_droplets():
    """v4: water clouds' B11 reaches the VNIR level (small droplets, fog) as well as ~0.55 of it."""
    ratios = np.array([synth.cloud_signature(np.random.default_rng(s), BANDS_6, level=0.5, thick=True)[0][4] / 0.5
                       for s in range(400)])
    assert ratios.max() > 0.95 and ratios.min() < 0.65


def test_cover_tracks_request():
    rng = np.random.default_rng(3)
    a = synth.cloud_opacity(rng, (256, 256), cover=0.4, peak=1.0, softness=0.01, beta=3.0)
    assert 0.35 < (a > 0).mean() < 0.45 and a.max() <= 1.0


def test_no_shadow_when_disabled():
    rng = np.random.default_rng(5)
    params = synth.sample_params(rng)
    params.with_shadow = False
    comp = synth.add_clouds(rng, _ground(rng), BANDS_6, params)
    assert not np.any(comp.label == SHADOW) and not np.any(comp.shadow)


def test_diffuse_fraction_falls_with_wavelength():
    f = synth.diffuse_fraction(BANDS_6, 0.2, 1.8)  # B02, B03, B04, B08, B11, B12
    assert np.all(np.diff(f) < 0)
    assert f[3] == pytest.approx(0.2) and f[0] > 0.4 and f[5] < 0.05
    assert synth.diffuse_fraction(("B02",), 0.35, 2.5)[0] == pytest.approx(0.9)  # capped


def test_shadow_dims_ground_not_path_radiance():
    """On a top-of-atmosphere image a shadow removes direct light from the ground only: the path radiance
    the air adds stays, so a fully shaded pixel keeps at least the path radiance."""
    rng = np.random.default_rng(3)
    surface = np.full((128, 128, 6), 0.1, np.float32)
    path = np.array([0.08, 0.05, 0.03, 0.01, 0.0, 0.0], np.float32)
    params = synth.CloudParams(cover=0.3, thick=True, peak=1.0, level=0.6, shift=(30, 0), diffuse=0.1,
                               with_shadow=True, angstrom=2.0)
    comp = synth.add_clouds(np.random.default_rng(3), surface + path, BANDS_6, params, path=path)
    shaded = (comp.shadow > 0.5) & (comp.opacity == 0)  # shadow, no cloud on top
    assert shaded.sum() > 20
    f = synth.diffuse_fraction(BANDS_6, 0.1, 2.0)
    want = path + 0.1 * (1 - comp.shadow[shaded][:, None] * (1 - f))
    np.testing.assert_allclose(comp.image[shaded], want, rtol=1e-5)
    # without `path` the whole TOA value is dimmed (the v1/v2 behaviour), far darker in blue
    rng = np.random.default_rng(3)
    old = synth.add_clouds(rng, surface + path, BANDS_6, params)
    assert np.all(old.image[shaded][:, 0] < comp.image[shaded][:, 0] - 0.02)


@pytest.mark.parametrize("level", [0.6, 0.22])
def test_thick_clouds_can_have_grey_shaded_parts_still_labelled_cloud(level):
    """v5: some thick clouds have broad shaded (grey) parts, never darker than SHADED_FLOOR, and the label stays cloud.

    Over black ground a thick cloud's image is opacity x its own reflectance (gamma 1), so image / opacity is the
    cloud's reflectance. Without shading that never falls below level x 0.97 (band jitter) x 0.775 (the fine
    texture's lowest factor)."""
    unshaded_min = level * 0.97 * (1 + 0.45 * (0 - 0.5))
    shaded = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        params = synth.CloudParams(cover=0.9, thick=True, peak=1.0, level=level, shift=(0, 0), diffuse=0.2,
                                   with_shadow=False)
        comp = synth.add_clouds(rng, np.zeros((128, 128, 4), np.float32), BANDS_4, params)
        opaque = comp.opacity > 0.5
        assert opaque.sum() > 1000
        refl = comp.image[opaque] / comp.opacity[opaque][:, None]
        assert refl.min() >= synth.SHADED_FLOOR * 0.97 - 1e-6  # grey, not black
        assert np.all(comp.label[opaque] == CLOUD)  # labels follow opacity, not brightness
        shaded.append(bool(np.mean(refl[:, 3] < unshaded_min) > 0.01))
    assert 0.15 < np.mean(shaded) < 0.7  # about P_SHADED (0.4) of thick clouds
