"""Teacher pseudo-labels: confident pixels only, from the real ukis-csmask ONNX models."""

import numpy as np

from cloudmask.contract import BANDS_4
from cloudmask.train import teacher
from cloudmask.train.sources import Scene


def test_confident_labels_marks_unsure_pixels():
    p = np.array([[[0.95, 0.03, 0.02], [0.5, 0.4, 0.1]], [[0.05, 0.05, 0.9], [0.1, 0.85, 0.05]]], np.float32)
    np.testing.assert_array_equal(teacher.confident_labels(p, 0.9), [[0, teacher.IGNORE], [2, teacher.IGNORE]])
    np.testing.assert_array_equal(teacher.confident_labels(p, 0.8), [[0, teacher.IGNORE], [2, 1]])


def test_teacher_model_choice():
    d4 = np.zeros((2, 2, 4), np.float32)
    d6 = np.zeros((2, 2, 6), np.float32)
    assert teacher.teacher_model(Scene("a", d4, BANDS_4, "L2A", "x")) == "model_4b_l2a"
    assert teacher.teacher_model(Scene("b", d6, BANDS_4 + ("B11", "B12"), "L1C", "x")) == "model_6b_l1c"


def test_teacher_runs_and_caches(tmp_path):
    """Runs the real ukis-csmask 4-band L2A ONNX model on a small synthetic scene: half bright cloud-like, half dark."""
    img = np.full((128, 128, 4), 0.05, np.float32)
    img[:, 64:] = 0.8
    s = Scene("half", img, BANDS_4, "L2A", "x")
    probs = teacher.teacher_probabilities(s)
    assert probs.shape == (128, 128, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    (lab,) = teacher.pseudo_labels([s], tmp_path)
    assert lab.shape == (128, 128) and set(np.unique(lab)) <= {0, 1, 2, teacher.IGNORE}
    assert len(list(tmp_path.glob("half_*.npz"))) == 1
    (again,) = teacher.pseudo_labels([s], tmp_path)  # served from the cache
    np.testing.assert_array_equal(lab, again)
