"""A few real training steps on tiny inputs: finite loss, checkpoints, resume at the saved epoch, export."""

import argparse
import csv
import json

import numpy as np
import pytest

from cloudmask.contract import CLOUDMASK_4B, CLOUDMASK_6B, BANDS_4, BANDS_6  # noqa: E402
from cloudmask.train import loop  # noqa: E402
from cloudmask.train.sources import Scene  # noqa: E402


def _args(tmp_path, *extra):
    p = argparse.ArgumentParser()
    loop.add_arguments(p)
    return p.parse_args(["--workdir", str(tmp_path / "wd"), "--chip", "32", "--batch", "2", "--steps-per-epoch", "2",
                         "--val-batches", "1", "--threads", "2", *extra])


def _clear():
    rng = np.random.default_rng(0)
    return [Scene("field", rng.uniform(0.02, 0.3, (300, 64, 4)).astype(np.float32), BANDS_4, "L2A", "spyndex")]


def test_train_resume_export(tmp_path):
    r1 = loop.train_variant(CLOUDMASK_4B, _args(tmp_path, "--epochs", "1"), _clear(), [], [], "test")
    wd = tmp_path / "wd" / CLOUDMASK_4B.name
    assert (wd / "last.keras").exists() and (wd / "best.keras").exists()
    state = json.loads((wd / "state.json").read_text())
    assert state["epoch"] == 1 == r1["epoch"] and np.isfinite(state["best_val_loss"])

    r2 = loop.train_variant(CLOUDMASK_4B, _args(tmp_path, "--epochs", "2", "--resume", "--export", str(tmp_path / "m")),
                            _clear(), [], [], "test resume")
    assert r2["epoch"] == 2
    rows = list(csv.DictReader((wd / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1]  # one epoch per run: the resume did not start over
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert (tmp_path / "m" / CLOUDMASK_4B.name / "1" / "saved_model.pb").exists()

    # Resuming a run that already reached --epochs trains nothing more and leaves the checkpoint alone.
    before = (wd / "last.keras").stat().st_mtime_ns
    r3 = loop.train_variant(CLOUDMASK_4B, _args(tmp_path, "--epochs", "2", "--resume"), _clear(), [], [], "test")
    assert r3["epoch"] == 2 and (wd / "last.keras").stat().st_mtime_ns == before


def test_init_from_starts_at_the_given_weights(tmp_path):
    """--init-from loads <dir>/<model>/best.keras; with lr 0 the trainable weights stay exactly those."""
    import keras

    loop.train_variant(CLOUDMASK_4B, _args(tmp_path, "--epochs", "1"), _clear(), [], [], "v1")
    src = keras.models.load_model(tmp_path / "wd" / CLOUDMASK_4B.name / "best.keras")
    args = _args(tmp_path, "--epochs", "1", "--lr", "0", "--init-from", str(tmp_path / "wd"))
    args.workdir = tmp_path / "wd2"
    r = loop.train_variant(CLOUDMASK_4B, args, _clear(), [], [], "v2")
    assert r["init_from"].endswith("best.keras")
    tuned = keras.models.load_model(tmp_path / "wd2" / CLOUDMASK_4B.name / "best.keras")
    for a, b in zip(src.trainable_weights, tuned.trainable_weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # A fresh model would differ: the check above can fail.
    fresh = loop.compile_model(__import__("cloudmask.train.unet", fromlist=["x"]).build_unet(4), 1e-3, 1)
    assert any(not np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(src.trainable_weights, fresh.trainable_weights))


def test_init_model_starts_the_6_band_net_as_the_4_band_one(tmp_path):
    """--init-model cloudmask-4b through the real loop: the 6-band net starts with the 4-band net's trainable
    weights and zero SWIR kernels (that this gives the 4-band output is the next test)."""
    import keras

    from cloudmask.train.unet import INPUT_LAYERS

    loop.train_variant(CLOUDMASK_4B, _args(tmp_path, "--epochs", "1"), _clear(), [], [], "4b")
    donor = keras.models.load_model(tmp_path / "wd" / CLOUDMASK_4B.name / "best.keras")
    rng = np.random.default_rng(1)
    clear6 = [Scene("field6", rng.uniform(0.02, 0.3, (96, 64, 6)).astype(np.float32), BANDS_6, "L2A", "dea_wright")]
    args = _args(tmp_path, "--epochs", "1", "--lr", "0", "--init-from", str(tmp_path / "wd"),
                 "--init-model", CLOUDMASK_4B.name)
    args.workdir = tmp_path / "wd6"
    r = loop.train_variant(CLOUDMASK_6B, args, clear6, [], [], "6b from 4b")
    assert r["init_from"].endswith(f"{CLOUDMASK_4B.name}/best.keras")
    six = keras.models.load_model(tmp_path / "wd6" / CLOUDMASK_6B.name / "best.keras")
    assert six.input_shape[-1] == 6
    # lr 0 keeps every trainable weight (BatchNorm's moving statistics still follow the 6-band batches).
    for layer in donor.layers:
        for a, b in zip(layer.trainable_weights, six.get_layer(layer.name).trainable_weights):
            a, b = np.asarray(a), np.asarray(b)
            if layer.name in INPUT_LAYERS and a.ndim == 4:
                assert not np.any(b[:, :, 4:, :])  # SWIR kernels start at zero
                b = b[:, :, :4, :]
            np.testing.assert_array_equal(a, b)


def test_transfer_gives_the_4_band_output_whatever_the_swir():
    import keras

    from cloudmask.train.unet import build_unet, transfer_weights

    keras.utils.set_random_seed(3)
    four, six = build_unet(4), build_unet(6)
    transfer_weights(four, BANDS_4, six, BANDS_6)
    x = np.random.default_rng(2).uniform(0, 1, (2, 32, 32, 6)).astype(np.float32)
    np.testing.assert_allclose(six.predict(x, verbose=0), four.predict(x[..., :4], verbose=0), atol=1e-5)
    assert not np.allclose(six.predict(x, verbose=0), build_unet(6).predict(x, verbose=0), atol=1e-3)


def test_transfer_refuses_a_target_without_the_source_bands():
    from cloudmask.train.unet import build_unet, transfer_weights

    with pytest.raises(ValueError, match="B11"):
        transfer_weights(build_unet(6), BANDS_6, build_unet(4), BANDS_4)


def test_batches_do_not_depend_on_workers():
    """A pool of batch-making processes gives exactly the batches the training process would make itself."""
    from cloudmask.train.data import Sampler

    sampler = Sampler(BANDS_4, _clear(), chip=32)
    one = loop.make_batches(sampler, 0, "m", steps=3, batch=2, workers=1)
    two = loop.make_batches(sampler, 0, "m", steps=3, batch=2, workers=2)
    try:
        for epoch in (0, 1):
            one.epoch = two.epoch = epoch
            for i in range(3):
                for a, b in zip(one[i], two[i]):
                    np.testing.assert_array_equal(a, b)
        one.epoch = 0
        first = one[0][0]
        one.epoch = 1
        assert not np.array_equal(first, one[0][0])  # and each epoch gets new batches
    finally:
        two.close()


def test_write_bundle_then_train_from_it(tmp_path, monkeypatch):
    """--write-bundle packs the scenes; --bundle trains from them without reading the shared folder."""
    from cloudmask.train import sources

    monkeypatch.setattr(sources, "load_clear", lambda: _clear())
    args = _args(tmp_path, "--no-teacher", "--write-bundle", str(tmp_path / "b.npz"))
    args.argv = []
    assert loop.run(args) == 0 and (tmp_path / "b.npz").exists()
    monkeypatch.setattr(sources, "load_clear", lambda: pytest.fail("read the shared folder"))
    args = _args(tmp_path, "--variant", "4b", "--epochs", "1", "--bundle", str(tmp_path / "b.npz"))
    args.argv = []
    assert loop.run(args) == 0
    assert (tmp_path / "wd" / CLOUDMASK_4B.name / "best.keras").exists()


def test_widths_flag_builds_that_net_and_the_card_says_so(tmp_path):
    r = loop.train_variant(CLOUDMASK_4B, _args(tmp_path, "--epochs", "1", "--widths", "8,16,24,40", "--export",
                                               str(tmp_path / "m")), _clear(), [], [], "test widths")
    card = json.loads((tmp_path / "m" / CLOUDMASK_4B.name / "1" / "model_card.json").read_text())
    text = json.dumps(card)
    assert "widths 8/16/24/40" in text and "16/32/48/64" not in text
    assert r["epoch"] == 1
    for bad in ("8,16,24", "8,16,x,40", "0,16,24,40"):
        with pytest.raises(SystemExit, match="--widths"):
            loop.parse_widths(bad)


def test_init_from_an_exported_version_fine_tunes_the_served_weights(tmp_path):
    """--init-from models/<name>/<version>: the exported SavedModel's weights, matched by name (lr 0 keeps them)."""
    import tensorflow as tf

    loop.train_variant(CLOUDMASK_4B, _args(tmp_path, "--epochs", "1", "--export", str(tmp_path / "m")), _clear(), [],
                       [], "v1")
    exported = tmp_path / "m" / CLOUDMASK_4B.name / "1"
    args = _args(tmp_path, "--epochs", "1", "--lr", "0", "--init-from", str(exported))
    args.workdir = tmp_path / "wd2"
    r = loop.train_variant(CLOUDMASK_4B, args, _clear(), [], [], "v2")
    assert r["init_from"] == str(exported)
    import keras

    tuned = keras.models.load_model(tmp_path / "wd2" / CLOUDMASK_4B.name / "best.keras")
    saved = {v.name.split(":")[0]: v.numpy() for v in tf.saved_model.load(str(exported)).variables}
    assert tuned.trainable_weights
    for w in tuned.trainable_weights:  # (BatchNorm's moving statistics move even at lr 0: not compared)
        np.testing.assert_array_equal(np.asarray(w), saved[w.path])
    # another architecture is refused by name and shape, not loaded in part
    args = _args(tmp_path, "--epochs", "1", "--init-from", str(exported), "--widths", "8,16,24,40")
    args.workdir = tmp_path / "wd3"
    with pytest.raises(ValueError, match="shape"):
        loop.train_variant(CLOUDMASK_4B, args, _clear(), [], [], "v3")


def test_card_teacher_line_names_the_sources_that_voted():
    summary = {"site (held out)": {"votes": {"multi-temporal": {}, "sen2cor-scl": {}}}, "eo": {"votes": {"s2cloudless": {}}}}
    text = loop.teacher_text(summary, 0.9)
    assert "voters: multi-temporal, s2cloudless, sen2cor-scl" in text and "cloud rims kept" in text
    assert "p >= 0.9" in text
    assert "voters" not in loop.teacher_text(None, 0.8) and "p >= 0.8" in loop.teacher_text(None, 0.8)
