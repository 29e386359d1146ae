"""Labelled-scene loaders: user scene folders (GeoTIFFs written here) and, when present, the shared
validation scenes."""

from __future__ import annotations


import numpy as np
import pytest
from ci import missing
import rasterio

from cloudmask import contract
from cloudmask.evaluate import labelled as scenes

def test_load_dir_reads_bands_scale_truth_and_valid(labelled_dir):
    s = scenes.load_dir(labelled_dir())
    assert s.name == "myscene" and s.bands == contract.BANDS_6 and s.level == "L2A"
    assert s.reflectance.shape == (64, 64, 6) and s.reflectance.dtype == np.float32
    np.testing.assert_allclose(s.reflectance[30, 30], labelled_dir.veg_dn / 10000, rtol=1e-6)  # DN / 10000
    assert s.classes == scenes.CLASSES_3 and s.shadow_labelled
    assert not s.valid[:, 63].any()  # nodata column
    assert not s.valid[0, :4].any()  # 255 in label.tif
    assert s.valid.sum() == 64 * 63 - 4
    assert (s.truth[~s.valid] == scenes.IGNORE).all()
    assert (s.truth[8:24, 8:40] == 1).all() and (s.truth[40:56, 8:40] == 2).all()


def test_load_dir_without_shadow_label_is_cloud_only(labelled_dir):
    s = scenes.load_dir(labelled_dir(shadow=False))
    assert s.classes == scenes.CLASSES_CLOUD and not s.shadow_labelled
    assert set(np.unique(s.truth[s.valid])) == {0, 1}


def test_load_dir_scene_json_overrides(labelled_dir):
    meta = {"name": "mine", "level": "l1c", "scale": 20000, "offset": -1000, "group": "acq-1"}
    s = scenes.load_dir(labelled_dir(meta=meta))
    assert s.name == "mine" and s.level == "L1C" and s.group == "acq-1"
    expected = np.clip((labelled_dir.veg_dn.astype(np.float32) - 1000) / 20000, 0, 1)
    np.testing.assert_allclose(s.reflectance[30, 30], expected, atol=1e-7)


def test_load_dir_level_from_geotiff_tag(labelled_dir):
    s = scenes.load_dir(labelled_dir(tags={"PROCESSING_LEVEL": "Level-1C"}))
    assert s.level == "L1C"


def test_load_dir_float_data_is_reflectance(labelled_dir):
    d = labelled_dir(dtype=np.float32)
    with rasterio.open(d / "image.tif", "r+") as dst:
        dst.write(dst.read() / np.float32(10000))
    s = scenes.load_dir(d)
    np.testing.assert_allclose(s.reflectance[30, 30], labelled_dir.veg_dn / 10000, rtol=1e-6)


def test_load_dir_rejects_unknown_label_values(labelled_dir):
    d = labelled_dir()
    with rasterio.open(d / "label.tif", "r+") as dst:
        lab = dst.read()
        lab[0, 5, 5] = 7
        dst.write(lab)
    with pytest.raises(ValueError, match="0, 1, 2 or 255"):
        scenes.load_dir(d)


def test_load_dir_needs_label(labelled_dir):
    d = labelled_dir()
    (d / "label.tif").unlink()
    with pytest.raises(FileNotFoundError):
        scenes.load_dir(d)


def test_describe_says_how_few(labelled_dir):
    a = scenes.load_dir(labelled_dir())
    chips = []
    for i in range(3):
        chips.append(scenes.load_dir(labelled_dir(shadow=False, folder=f"chip{i}",
                                                  meta={"group": "one-day"})))
    text = scenes.describe([a, *chips])
    assert text.startswith("4 labelled scenes from 2 acquisitions")
    assert "1 with shadow labels (myscene)" in text
    assert "3 cloud-only chips of ONE acquisition (one-day)" in text


# --- the shared validation scenes: explicitly about ../shared, so they skip without it (but not in CI) ---

def _shared_or_skip():
    root = scenes.labelled_root()
    if not root.is_dir():
        missing(f"shared labelled scenes not at {root}")
    return root


def test_shared_scg_scaled_and_labelled():
    root = _shared_or_skip()
    s = scenes.load_scg(root)
    with rasterio.open(root / "scg" / "cloudy.tif") as src:
        raw = src.read()
    assert s.bands == contract.DEFAULT_BANDS_BY_COUNT[12] and s.level == "L1C"
    assert s.reflectance.shape == (256, 256, 12)
    np.testing.assert_allclose(s.reflectance, np.clip(np.moveaxis(raw, 0, -1) / scenes.SCG_SCALE, 0, 1), rtol=1e-6)
    assert s.shadow_labelled
    # mask.tif counts: 0 31329, 1 16994, 2 17116, 3 97 (class 3 is not scored)
    assert [int((s.truth == c).sum()) for c in (0, 1, 2)] == [31329, 16994, 17116]
    assert int(s.valid.sum()) == 256 * 256 - 97


def test_shared_chifunfu_chips():
    root = _shared_or_skip()
    chips = scenes.load_chifunfu(root)
    assert [c.name for c in chips] == [f"chifunfu-{c}" for c in scenes.CHIFUNFU_CHIPS]
    fractions = []
    for c in chips:
        assert c.reflectance.shape == (512, 512, 4) and c.bands == contract.BANDS_4 and c.level == "L2A"
        assert c.classes == scenes.CLASSES_CLOUD and c.group == "chifunfu-2020-04-29"
        assert 0 < c.reflectance.max() <= 1
        fractions.append(round(float((c.truth[c.valid] == 1).mean()), 2))
    assert fractions == [0.48, 0.64, 1.0, 1.0, 1.0]  # as ../shared/data/README.md states
