"""Evaluation metrics against confusion matrices worked out by hand on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from cloudmask.evaluate import metrics

# truth / prediction, 0 clear 1 cloud 2 shadow 255 ignore; pixel 3 is masked out by `valid`
TRUTH = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 255], dtype=np.uint8)
PRED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 1, 0], dtype=np.uint8)
VALID = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 1], dtype=bool)
# by hand: pairs (0,0)x2 (0,1) (1,1)x2 (1,0) (2,2) (2,1); the 255 and the invalid pixel drop out
CM = np.array([[2, 1, 0],
               [1, 2, 0],
               [0, 1, 1]])


def test_confusion_matches_hand_count():
    cm = metrics.confusion(TRUTH, PRED, VALID)
    np.testing.assert_array_equal(cm, CM)
    assert cm.sum() == 8


def test_confusion_2d_equals_flat():
    np.testing.assert_array_equal(metrics.confusion(TRUTH.reshape(2, 5), PRED.reshape(2, 5), VALID.reshape(2, 5)), CM)


def test_confusion_accumulates_over_scenes():
    a = metrics.confusion(TRUTH[:5], PRED[:5], VALID[:5])
    b = metrics.confusion(TRUTH[5:], PRED[5:], VALID[5:])
    np.testing.assert_array_equal(a + b, CM)


def test_confusion_rejects_size_mismatch():
    with pytest.raises(ValueError):
        metrics.confusion(TRUTH, PRED[:-1])


def test_iou_f1_recall_precision_by_hand():
    # IoU = TP / (TP + FP + FN): clear 2/(3+3-2), cloud 2/(4+3-2), shadow 1/(1+2-1)
    np.testing.assert_allclose(metrics.iou(CM), [2 / 4, 2 / 5, 1 / 2])
    # F1 = 2TP / (row + col): clear 4/6, cloud 4/7, shadow 2/3
    np.testing.assert_allclose(metrics.f1(CM), [4 / 6, 4 / 7, 2 / 3])
    np.testing.assert_allclose(metrics.recall(CM), [2 / 3, 2 / 3, 1 / 2])
    np.testing.assert_allclose(metrics.precision(CM), [2 / 3, 2 / 4, 1 / 1])
    assert metrics.balanced_accuracy(CM) == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)  # 11/18
    assert metrics.overall_accuracy(CM) == pytest.approx(5 / 8)


def test_binary_fold_counts_predicted_shadow_as_not_cloud():
    b = metrics.to_binary(CM)
    # not-cloud = {clear, shadow}: [[2+0+0+1, 1+1], [1+0, 2]]
    np.testing.assert_array_equal(b, [[3, 2], [1, 2]])
    assert metrics.iou(b)[1] == pytest.approx(2 / 5)  # cloud IoU is the same 3-class or folded
    assert metrics.iou(b)[0] == pytest.approx(3 / 6)
    assert metrics.balanced_accuracy(b) == pytest.approx((3 / 5 + 2 / 3) / 2)


def test_cloud_only_truth_with_shadow_predictions():
    # an all-cloud chip (as three Chifunfu chips are): labels say cloud, the model says clear / shadow on 2 px
    truth = np.ones(4, np.uint8)
    pred = np.array([1, 1, 0, 2], np.uint8)
    cm = metrics.confusion(truth, pred)
    np.testing.assert_array_equal(cm, [[0, 0, 0], [1, 2, 1], [0, 0, 0]])
    b = metrics.to_binary(cm)
    np.testing.assert_array_equal(b, [[0, 0], [2, 2]])
    assert metrics.iou(b)[1] == pytest.approx(0.5)
    assert metrics.iou(b)[0] == 0.0  # predicted not-cloud but none in truth: a false positive, IoU 0
    assert metrics.balanced_accuracy(b) == pytest.approx(0.5)  # only classes present in truth count


def test_absent_class_is_nan_not_zero():
    cm = metrics.confusion(np.array([0, 1]), np.array([0, 1]))
    iou = metrics.iou(cm)
    assert iou[0] == 1.0 and iou[1] == 1.0 and np.isnan(iou[2])
    s = metrics.summary(cm, ("clear", "cloud", "shadow"))
    assert s["iou"]["shadow"] is None and s["mean_iou"] == 1.0


def test_summary_keys_and_values():
    s = metrics.summary(CM, ("clear", "cloud", "shadow"))
    assert s["pixels"] == 8
    assert s["confusion"] == CM.tolist()
    assert s["iou"]["cloud"] == pytest.approx(0.4)
    assert s["mean_iou"] == pytest.approx((0.5 + 0.4 + 0.5) / 3)
    assert s["balanced_accuracy"] == pytest.approx(11 / 18)


def test_seconds_per_megapixel():
    assert metrics.seconds_per_mpx(2.0, 500_000) == pytest.approx(4.0)
    assert np.isnan(metrics.seconds_per_mpx(1.0, 0))
