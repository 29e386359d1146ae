"""Put per-chip class probabilities back together with overlap blending.

Each chip's probabilities are weighted by a ramp that falls towards the chip's edges over the
overlap width (where a net sees least context) and averaged where chips overlap, so no seam
shows. The weights never reach zero, so pixels at the raster's own edges, covered by one chip
only, still get that chip's answer.
"""

from __future__ import annotations

import numpy as np

from cloudmask import contract

from .tile import TilePlan


def _ramp(n: int, overlap: int) -> np.ndarray:
    if overlap == 0:
        return np.ones(n, dtype=np.float32)
    i = np.arange(n, dtype=np.float32)
    return np.minimum(np.minimum(i + 1, n - i), overlap + 1) / np.float32(overlap + 1)


class Stitcher:
    """Blends chips' probabilities (float, or uint8 from contract.quantise: argmax does not care
    about the scale) into one (H, W, C) array; with one chip there is nothing to blend and the
    chip's own array, cropped, is the answer (no copy)."""

    def __init__(self, tp: TilePlan, n_classes: int = len(contract.CLASS_NAMES)):
        self.tp = tp
        self.single = len(tp) == 1  # one chip: nothing to blend, just crop the padding
        self._single: np.ndarray | None = None
        if not self.single:
            self.acc = np.zeros((tp.height, tp.width, n_classes), dtype=np.float32)
            self.wsum = np.zeros((tp.height, tp.width), dtype=np.float32)
            self.weight = np.outer(_ramp(tp.chip_h, tp.overlap), _ramp(tp.chip_w, tp.overlap))

    def add(self, probs: np.ndarray, positions) -> None:
        """probs: (N, chip_h, chip_w, C) for the N chips at `positions`."""
        if self.single:
            self._single = probs[0, :self.tp.height, :self.tp.width]
            return
        for p, (r, c) in zip(probs, positions):
            h = min(self.tp.chip_h, self.tp.height - r)  # crop the padding of small rasters
            w = min(self.tp.chip_w, self.tp.width - c)
            wt = self.weight[:h, :w]
            self.acc[r:r + h, c:c + w] += p[:h, :w] * wt[..., None]
            self.wsum[r:r + h, c:c + w] += wt

    def probabilities(self) -> np.ndarray:
        if self.single:
            if self._single is None:
                raise RuntimeError("some pixels were covered by no chip")
            return self._single
        if not np.all(self.wsum > 0):
            raise RuntimeError("some pixels were covered by no chip")
        self.acc /= self.wsum[..., None]
        return self.acc


class RowStitcher:
    """The mask that Stitcher + to_mask give, bit for bit, holding float32 only for the rows that
    chips still to come can touch: a row is final once every chip that covers it is in (all chips
    of its chip rows), and then its classes go into the uint8 mask and its float32 rows are dropped.

    Chips arrive roughly in plan order (row-major), so the band is about two chip rows high (~63 MB
    for 4096 px wide, 3 classes) instead of the whole raster's (268 MB at 4096 x 4096). The same
    additions in the same order and the same division as Stitcher, so the same probabilities."""

    def __init__(self, tp: TilePlan, n_classes: int = len(contract.CLASS_NAMES)):
        self.tp = tp
        self.n_classes = n_classes
        self.weight = np.outer(_ramp(tp.chip_h, tp.overlap), _ramp(tp.chip_w, tp.overlap))
        self.pending = {r: len(tp.cols) for r in tp.rows}
        self.out = np.empty((tp.height, tp.width), dtype=np.uint8)
        self.base = 0  # rows above it are final in self.out; the band starts here
        self.acc = np.zeros((0, tp.width, n_classes), dtype=np.float32)
        self.wsum = np.zeros((0, tp.width), dtype=np.float32)

    def _cover(self, end: int) -> None:
        """Grow the band to reach row `end` (exclusive)."""
        need = end - self.base
        if need <= self.acc.shape[0]:
            return
        rows = max(need, 2 * self.acc.shape[0])
        acc = np.zeros((rows, self.tp.width, self.n_classes), dtype=np.float32)
        wsum = np.zeros((rows, self.tp.width), dtype=np.float32)
        acc[:self.acc.shape[0]] = self.acc
        wsum[:self.wsum.shape[0]] = self.wsum
        self.acc, self.wsum = acc, wsum

    def add(self, probs: np.ndarray, positions) -> None:
        """probs: (N, chip_h, chip_w, C) for the N chips at `positions`."""
        for p, (r, c) in zip(probs, positions):
            if self.pending.get(r, 0) <= 0:
                raise RuntimeError(f"chip row {r} is not in the plan or already complete")
            h = min(self.tp.chip_h, self.tp.height - r)  # crop the padding of small rasters
            w = min(self.tp.chip_w, self.tp.width - c)
            self._cover(r + h)
            wt = self.weight[:h, :w]
            lo = r - self.base
            self.acc[lo:lo + h, c:c + w] += p[:h, :w] * wt[..., None]
            self.wsum[lo:lo + h, c:c + w] += wt
            self.pending[r] -= 1
        self._finalize()

    def _finalize(self) -> None:
        final = min((r for r, n in self.pending.items() if n > 0), default=self.tp.height)
        k = final - self.base
        if k <= 0:
            return
        if k > self.acc.shape[0] or not np.all(self.wsum[:k] > 0):
            raise RuntimeError("some pixels were covered by no chip")
        self.out[self.base:final] = contract.classes(self.acc[:k] / self.wsum[:k, :, None])
        rest = self.acc.shape[0] - k
        self.acc[:rest] = self.acc[k:]  # numpy copes with the overlap
        self.acc[rest:] = 0
        self.wsum[:rest] = self.wsum[k:]
        self.wsum[rest:] = 0
        self.base = final

    def mask(self, invalid: np.ndarray | None = None) -> np.ndarray:
        """(H, W) uint8 classes, NODATA where `invalid`; every chip of the plan must be in."""
        if self.base < self.tp.height:
            raise RuntimeError("some pixels were covered by no chip")
        if invalid is not None:
            self.out[invalid] = contract.NODATA
        return self.out


def crop_spans(starts, chip: int, size: int) -> list[tuple[int, int]]:
    """For chips at `starts` along an axis of `size` px: the [lo, hi) each chip answers for when chips are cropped,
    not blended. Neighbours meet at the middle of their overlap, so every pixel is answered by the chip that sees
    it furthest from that chip's edge (at least overlap / 2 px in), and the spans tile the axis exactly."""
    spans = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else (s + starts[i - 1] + chip) // 2
        hi = size if i == len(starts) - 1 else (starts[i + 1] + s + chip) // 2
        spans.append((lo, hi))
    return spans


class CropStitcher:
    """The mask from each chip's classes (the predictor's argmax, uint8), each chip answering only for its span
    (crop_spans): no blending, so no float32 and a twelfth of the bytes of FP32 probabilities on the hop."""

    def __init__(self, tp: TilePlan):
        self.tp = tp
        self.rows = dict(zip(tp.rows, crop_spans(tp.rows, tp.chip_h, tp.height)))
        self.cols = dict(zip(tp.cols, crop_spans(tp.cols, tp.chip_w, tp.width)))
        self.out = np.empty((tp.height, tp.width), dtype=np.uint8)
        self.missing = set(tp.positions)

    def add(self, classes: np.ndarray, positions) -> None:
        """classes: (N, chip_h, chip_w) uint8 for the N chips at `positions`."""
        for k, (r, c) in zip(classes, positions):
            if (r, c) not in self.missing:
                raise RuntimeError(f"chip at {(r, c)} is not in the plan or already in")
            (r0, r1), (c0, c1) = self.rows[r], self.cols[c]
            self.out[r0:r1, c0:c1] = k[r0 - r:r1 - r, c0 - c:c1 - c]
            self.missing.discard((r, c))

    def mask(self, invalid: np.ndarray | None = None) -> np.ndarray:
        if self.missing:
            raise RuntimeError("some pixels were covered by no chip")
        if invalid is not None:
            self.out[invalid] = contract.NODATA
        return self.out


def to_mask(probs: np.ndarray, invalid: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) probabilities -> (H, W) uint8 classes, NODATA where `invalid`."""
    mask = contract.classes(probs)
    if invalid is not None:
        mask[invalid] = contract.NODATA
    return mask


def counts(mask: np.ndarray) -> tuple[int, int, int]:
    """(valid, cloud, shadow) pixel counts of a mask: what cover fractions are made of, and what adds up over
    the blocks of a large raster (cloudmask.blocks)."""
    return (int(np.count_nonzero(mask != contract.NODATA)), int(np.count_nonzero(mask == contract.CLOUD)),
            int(np.count_nonzero(mask == contract.SHADOW)))


def cover_from_counts(valid: int, cloud: int, shadow: int) -> tuple[float, float]:
    """Cloud and shadow fractions of the valid (not NODATA) pixels; 0 when none is valid."""
    if valid == 0:
        return 0.0, 0.0
    return float(cloud) / valid, float(shadow) / valid


def cover(mask: np.ndarray) -> tuple[float, float]:
    """Cloud and shadow fractions of the valid (not NODATA) pixels of `mask`; 0 when none is valid."""
    return cover_from_counts(*counts(mask))
