"""Training and held-out synthetic batches for one model variant.

A sample is one of:
* a crop of a real clear scene with synthetic clouds and shadows (exact labels) — most samples;
* a crop of a clear scene with no cloud at all (hard negatives: snow, bright soil, water stay "clear");
* a crop of a real cloudy acquisition with labels built from independent sources (cloudmask.train.realclouds:
  multi-temporal tests, algorithm masks, teachers; 255 = ignore) or the teacher's confident labels -- since v6
  the main signal (P_TEACHER), sampled by how much they hold of the hard cases (partial cloud, shadow).
Then processing-level shift (L1C <-> L2A), geometry and radiometry augmentations.

Held-out split (model selection uses it, never ../shared/data/labelled): for clear scenes of at least
VAL_MIN_ROWS rows the bottom VAL_FRACTION of rows; the BigEarthNet patch VAL_PATCH as a whole. Training
crops never reach into those rows/patch. Every batch is a pure function of (seed, epoch, index), so runs
and resumed runs see the same data.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from cloudmask.contract import CLEAR, CLOUD, SHADOW
from cloudmask.train import augment, synth
from cloudmask.train.sources import Scene
from cloudmask.train.labels import IGNORE

VAL_FRACTION = 0.25
VAL_MIN_ROWS = 280
VAL_PATCH = "S2A_MSIL2A_20170617T113321_36_85"
CLASS_WEIGHTS = {CLEAR: 1.0, CLOUD: 1.5, SHADOW: 4.0}  # shadows are rarer and thinner (v1: 3.0)
P_TEACHER = 0.6  # real clouds with built labels: the main signal (v1: 0.15, v2-v5: 0.3 ukis-csmask labels only)
P_NO_CLOUD = 0.25  # cloud-free crops: dark land and water must stay "clear" (v1-v4: 0.12)
SNOW_WEIGHT = 4.0  # oversample the one snow scene (snow must stay "clear")


@dataclasses.dataclass
class Region:
    scene: Scene
    data: np.ndarray  # (h, w, B) in the variant's band order
    label: np.ndarray | None = None  # teacher labels for cloudy scenes


def held_out_from(name: str, rows: int) -> int | None:
    """First held-out row of a clear scene: 0 for VAL_PATCH (all of it), the cut above the bottom VAL_FRACTION for
    scenes of at least VAL_MIN_ROWS rows, None (nothing held out) otherwise. Training crops stay above it."""
    if name == VAL_PATCH:
        return 0
    return int(rows * (1 - VAL_FRACTION)) if rows >= VAL_MIN_ROWS else None


def _split(scenes: list[Scene], bands: tuple[str, ...]) -> tuple[list[Region], list[Region]]:
    train, val = [], []
    for s in scenes:
        if not s.has(bands):
            continue
        d = s.select(bands)
        cut = held_out_from(s.name, d.shape[0])
        if cut is None:
            train.append(Region(s, d))
            continue
        if cut > 0:
            train.append(Region(s, d[:cut]))
        val.append(Region(s, d[cut:]))
    return train, val


def _crop(rng: np.random.Generator, arr: np.ndarray, chip: int, label: np.ndarray | None = None):
    h, w = arr.shape[:2]
    if h < chip or w < chip:  # small patches: mirror-extend (keeps texture statistics, no seams of zeros)
        ph, pw = max(0, chip - h), max(0, chip - w)
        pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        arr = np.pad(arr, pad + ((0, 0),), mode="symmetric")
        if label is not None:
            label = np.pad(label, pad, mode="symmetric")
        h, w = arr.shape[:2]
    y, x = int(rng.integers(0, h - chip + 1)), int(rng.integers(0, w - chip + 1))
    return arr[y : y + chip, x : x + chip], None if label is None else label[y : y + chip, x : x + chip]


def _real_weights(regions: list[Region]) -> np.ndarray:
    """Real acquisitions: all-cloud and all-clear dates teach little that others do not; partial cloud, cloud
    edges and shadows are what the synthetic data cannot teach, so they are drawn more often."""
    w = []
    for r in regions:
        lab = r.label
        n = max(1, int((lab != IGNORE).sum()))
        cloud, shadow = (lab == CLOUD).sum() / n, (lab == SHADOW).sum() / n
        w.append((0.25 + 4 * min(cloud, 1 - cloud) + 6 * shadow) * (n / lab.size))
    w = np.asarray(w, np.float64) + 1e-6
    return w / w.sum()


def _weights(scenes: list[Region]) -> np.ndarray:
    w = np.array([np.sqrt(r.data.shape[0] * r.data.shape[1]) * (SNOW_WEIGHT if "snow" in r.scene.tags else 1.0)
                  for r in scenes])
    return w / w.sum()


class Sampler:
    def __init__(self, bands: tuple[str, ...], clear: list[Scene], cloudy: list[Scene] = (),
                 teacher_labels: list[np.ndarray] = (), chip: int = 256, real_val: list[tuple[Scene, np.ndarray]] = (),
                 p_real: float = P_TEACHER):
        self.bands = tuple(bands)
        self.p_real = p_real
        self.chip = chip
        self.train, self.val = _split(clear, self.bands)
        if not self.train:
            raise ValueError(f"no clear scene carries bands {self.bands}")
        self.teacher = [Region(s, s.select(self.bands), lab) for s, lab in zip(cloudy, teacher_labels) if s.has(self.bands)]
        self.w_teacher = _real_weights(self.teacher) if self.teacher else None
        # whole acquisitions / sites that training never sees: part of the validation loss epochs are chosen on
        self.real_val = [Region(s, s.select(self.bands), lab) for s, lab in real_val if s.has(self.bands)]
        self.w_real_val = _real_weights(self.real_val) if self.real_val else None
        self.w_train = _weights(self.train)
        if not self.val:  # tiny inputs (tests): nothing large enough to hold out, validate on training scenes
            self.val = self.train
        self.w_val = _weights(self.val)

    def sample(self, rng: np.random.Generator, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        regions, weights = (self.train, self.w_train) if split == "train" else (self.val, self.w_val)
        real = None
        if split == "train" and self.teacher and rng.random() < self.p_real:
            real = self.teacher, self.w_teacher
        elif split == "val_real":
            if not self.real_val:
                raise ValueError("no held-out real acquisition carries bands " + ",".join(self.bands))
            real = self.real_val, self.w_real_val
        if real is not None:
            r = real[0][int(rng.choice(len(real[0]), p=real[1]))]
            img, lab = _crop(rng, r.data, self.chip, r.label)
            img, _ = augment.to_level(rng, img, self.bands, r.scene.level)
        else:
            r = regions[int(rng.choice(len(regions), p=weights))]
            img, _ = _crop(rng, r.data, self.chip)
            img, path = augment.to_level(rng, img, self.bands, r.scene.level)
            if rng.random() < P_NO_CLOUD:
                lab = np.full(img.shape[:2], CLEAR, np.uint8)
            else:
                comp = synth.add_clouds(rng, img, self.bands, path=path)
                img, lab = comp.image, comp.label
        img, lab = augment.geometric(rng, img, lab)
        img = augment.radiometric(rng, img)
        return img, lab

    def batch(self, rng: np.random.Generator, n: int, split: str = "train"):
        """(x, y, w): images, labels (255 mapped to 0) and per-pixel loss weights (0 where ignored)."""
        xs, ys = zip(*(self.sample(rng, split) for _ in range(n)))
        x = np.stack(xs).astype(np.float32)
        y = np.stack(ys)
        w = np.zeros(y.shape, np.float32)
        for c, cw in CLASS_WEIGHTS.items():
            w[y == c] = cw
        y = np.where(y == IGNORE, 0, y).astype(np.int32)
        return x, y, w


def batch_rng(seed: int, *keys) -> np.random.Generator:
    """A generator that depends only on (seed, keys): batches do not depend on what ran before."""
    return np.random.default_rng([seed] + [zlib.crc32(str(k).encode()) for k in keys])
