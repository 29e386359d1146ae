"""Scores of a predicted mask against a truth mask: confusion matrices and what derives from them. Pure numpy.

Rows of a confusion matrix are truth, columns prediction, both in the contract's class order
(0 clear, 1 cloud, 2 shadow). Pixels whose truth is IGNORE (255) or that are not valid are skipped.
Cloud-only labels (cloud / not cloud) are scored on the 2x2 matrix `to_binary` folds a 3x3 one into:
a predicted shadow counts as not-cloud.
"""

from __future__ import annotations

import numpy as np

N_CLASSES = 3
IGNORE = 255


def confusion(truth: np.ndarray, pred: np.ndarray, valid: np.ndarray | None = None,
              n: int = N_CLASSES) -> np.ndarray:
    """(n, n) int64 counts: [t, p] = pixels of truth class t predicted as p."""
    truth = np.asarray(truth).ravel()
    pred = np.asarray(pred).ravel()
    if truth.shape != pred.shape:
        raise ValueError(f"truth and prediction differ in size: {truth.size} vs {pred.size}")
    keep = (truth < n) & (pred < n)
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool).ravel()
    idx = truth[keep].astype(np.int64) * n + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=n * n).reshape(n, n)


def to_binary(cm: np.ndarray, positive: int = 1) -> np.ndarray:
    """Fold an (n, n) matrix into 2x2 [not-positive, positive] (cloud vs rest for positive=1)."""
    cm = np.asarray(cm)
    pos = np.zeros(cm.shape[0], dtype=bool)
    pos[positive] = True
    return np.array([[cm[~pos][:, ~pos].sum(), cm[~pos][:, pos].sum()],
                     [cm[pos][:, ~pos].sum(), cm[pos][:, pos].sum()]], dtype=np.int64)


def _div(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def iou(cm: np.ndarray) -> np.ndarray:
    """Per-class intersection over union TP / (TP + FP + FN); NaN for a class absent from truth and prediction."""
    cm = np.asarray(cm)
    tp = np.diag(cm)
    return _div(tp, cm.sum(0) + cm.sum(1) - tp)


def precision(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    return _div(np.diag(cm), cm.sum(0))


def recall(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    return _div(np.diag(cm), cm.sum(1))


def f1(cm: np.ndarray) -> np.ndarray:
    """Per-class F1 = 2 TP / (2 TP + FP + FN); NaN for a class absent from truth and prediction."""
    cm = np.asarray(cm)
    tp = np.diag(cm)
    return _div(2 * tp, cm.sum(0) + cm.sum(1))


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present in truth (NaN if none)."""
    r = recall(cm)
    r = r[np.asarray(cm).sum(1) > 0]
    return float(r.mean()) if r.size else float("nan")


def overall_accuracy(cm: np.ndarray) -> float:
    cm = np.asarray(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def seconds_per_mpx(seconds: float, pixels: int) -> float:
    return float(seconds) / (pixels / 1e6) if pixels else float("nan")


def summary(cm: np.ndarray, names) -> dict:
    """JSON-ready scores of one confusion matrix: per-class IoU / F1 / precision / recall, mean IoU, balanced
    and overall accuracy. NaN becomes None."""
    cm = np.asarray(cm)

    def clean(v):
        v = float(v)
        return None if np.isnan(v) else v

    out = {"confusion": cm.tolist(), "classes": list(names), "pixels": int(cm.sum())}
    for key, fn in (("iou", iou), ("f1", f1), ("precision", precision), ("recall", recall)):
        out[key] = {n: clean(v) for n, v in zip(names, fn(cm))}
    ious = iou(cm)
    out["mean_iou"] = clean(np.nanmean(ious)) if np.any(~np.isnan(ious)) else None
    out["balanced_accuracy"] = clean(balanced_accuracy(cm))
    out["overall_accuracy"] = clean(overall_accuracy(cm))
    return out
