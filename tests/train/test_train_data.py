"""Training batches: shapes, label values, ignore handling, reproducibility and the held-out split."""

import numpy as np
import pytest

from cloudmask.contract import BANDS_4, BANDS_6
from cloudmask.train import data
from cloudmask.train.sources import Scene
from cloudmask.train.teacher import IGNORE


def _scene(name, h, w, bands=BANDS_6, seed=0, tags=()):
    rng = np.random.default_rng(seed)
    return Scene(name, rng.uniform(0.02, 0.4, (h, w, len(bands))).astype(np.float32), bands, "L2A", "spyndex", tags)


def test_batch_shapes_and_values():
    s = data.Sampler(BANDS_6, [_scene("a", 300, 100), _scene("b", 40, 50, seed=1)], chip=32)
    x, y, w = s.batch(data.batch_rng(0, "t"), 5)
    assert x.shape == (5, 32, 32, 6) and x.dtype == np.float32
    assert y.shape == w.shape == (5, 32, 32) and set(np.unique(y)) <= {0, 1, 2}
    assert np.all(w > 0)  # no teacher pixels: every pixel counts
    assert 0 <= x.min() and x.max() <= 1


def test_same_seed_same_batch():
    s = data.Sampler(BANDS_4, [_scene("a", 64, 64, BANDS_4)], chip=32)
    a = s.batch(data.batch_rng(7, "m", 3, 1), 3)
    b = s.batch(data.batch_rng(7, "m", 3, 1), 3)
    c = s.batch(data.batch_rng(7, "m", 3, 2), 3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_heldout_split_is_disjoint():
    big = _scene("big", 400, 120)
    s = data.Sampler(BANDS_6, [big, _scene(data.VAL_PATCH, 120, 120, seed=2)], chip=32)
    (tr,) = s.train
    assert tr.data.shape[0] == 300 and {r.scene.name for r in s.val} == {"big", data.VAL_PATCH}
    val_big = next(r for r in s.val if r.scene.name == "big")
    np.testing.assert_array_equal(np.concatenate([tr.data, val_big.data]), big.data)


def test_scene_without_bands_is_skipped():
    with pytest.raises(ValueError):
        data.Sampler(BANDS_6, [_scene("rgbn", 64, 64, BANDS_4)], chip=32)


def test_teacher_ignore_gets_zero_weight():
    cloudy = _scene("cloudy", 48, 48, BANDS_4, seed=4)
    lab = np.full((48, 48), IGNORE, np.uint8)
    lab[:, :24] = 1
    # only real (teacher-labelled) samples, to test their weighting
    s = data.Sampler(BANDS_4, [_scene("a", 64, 64, BANDS_4)], [cloudy], [lab], chip=48, p_real=1.0)
    x, y, w = s.batch(data.batch_rng(0), 4)
    for i in range(4):
        assert np.sum(w[i] == 0) == 48 * 24  # half the chip ignored, wherever the flips moved it
        assert np.all(y[i][w[i] > 0] == 1) and np.all(w[i][w[i] > 0] == data.CLASS_WEIGHTS[1])
