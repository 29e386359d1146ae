"""The model contract: the one place that says what a cloudmask model eats and returns.

Both components read it: the transformer to pick bands, scale them and name the tensors it sends;
the predictor to check the SavedModel it loads and to answer V2 metadata. Training and export
read it too, and write it into each model's folder (contract.json) so a model directory is
self-describing when it travels without this package (e.g. to a gs:// bucket).

Nothing here imports TensorFlow or rasterio: both images install this module.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

# Classes of the mask. 255 is not a model class: the transformer writes it where input is nodata.
CLEAR, CLOUD, SHADOW = 0, 1, 2
NODATA = 255
CLASS_NAMES = ("clear", "cloud", "shadow")

# Tensor names on the wire between transformer and predictor (V2 protocol).
PREDICTOR_INPUT = "reflectance"  # FP32 [N, H, W, B], reflectance 0..1 in the contract's band order
PREDICTOR_OUTPUT = "probabilities"  # FP32 [N, H, W, 3], softmax over CLASS_NAMES

# Compact forms of the same tensors, for the transformer's hop (half to a twelfth of the bytes).
# The predictor's V2 metadata lists every form; a request carries exactly one of the two inputs
# and names the outputs it wants (none named: `probabilities`), so a client that sends FP32
# reflectance and reads FP32 probabilities is served exactly as before.
#   dn: UINT16 [N, H, W, B], the raw digital numbers; the predictor applies reflectance() itself
#       with the input tensor's parameters `scale` and `offset` (numbers or numeric strings; default
#       DEFAULT_SCALE, DEFAULT_OFFSET), so the model sees bit for bit what the FP32 path gives it.
#   classes: UINT8 [N, H, W], classes(probabilities): the mask of a chip, where nothing is blended.
#   probabilities_u8: UINT8 [N, H, W, 3], quantise(probabilities) = round(255 p), for blending.
PREDICTOR_INPUT_DN = "dn"
PREDICTOR_OUTPUT_CLASSES = "classes"
PREDICTOR_OUTPUT_U8 = "probabilities_u8"
PROBABILITY_U8_SCALE = 255

# Tensor names the transformer (model name `cloudmask`) speaks to users.
SERVICE_NAME = "cloudmask"
INPUT_GEOTIFF = "geotiff"
# inputs by reference, instead of `geotiff` (issue 13): BYTES [n] URLs (one multi-band raster, or one per band),
# BYTES [1] a STAC item (its JSON or its URL); the service reads them only where its operator allows the URLs
INPUT_URI = "uri"
INPUT_STAC_ITEM = "stac_item"
# or the pixels themselves, as a tensor [bands, height, width] of the raster's own type (UINT16 for S2 DN), with the
# georeferencing as request parameters (`bands` required, `crs`, `transform`, `nodata`, `tags`): what a block-wise
# client sends, so that nobody encodes and decodes a GeoTIFF in between
INPUT_RASTER = "raster"
RASTER_DATATYPES = {"UINT8": "uint8", "INT8": "int8", "UINT16": "uint16", "INT16": "int16", "UINT32": "uint32",
                    "INT32": "int32", "FP32": "float32", "FP64": "float64"}
OUTPUT_MASK = "mask"
OUTPUT_CLOUD_COVER = "cloud_cover"
OUTPUT_SHADOW_COVER = "shadow_cover"
OUTPUT_MASK_GEOTIFF = "mask_geotiff"

# Chip geometry. The nets are fully convolutional with 4 poolings, so any multiple of 16 works. The service and
# `cloudmask evaluate` size chips to the request, up to MAX_CHIP a side (tile.fitted), at most BATCH_PIXELS of chip
# pixels per predictor call (four 512 px chips, or one 1024 px chip); CHIP is the fixed chip of tile.plan (the blend
# path, training) and of the latency bench.
CHIP = 512
CHIP_MULTIPLE = 16
MAX_CHIP = 1024
BATCH_PIXELS = 4 * CHIP * CHIP
OVERLAP = 64  # px neighbouring chips share (stitch blends them); the service's, evaluate's and the bench's default

# One request's pixel budget (after `window`), the transformer's --max_pixels default: larger ones get 413.
MAX_PIXELS = 4096 * 4096

# The mask GeoTIFF's band description (the service's mask_geotiff and `cloudmask predict`'s file alike).
MASK_DESCRIPTION = "cloudmask: 0 clear, 1 cloud, 2 shadow, 255 nodata"

# DN -> reflectance: reflectance = (DN + offset) / scale. Sentinel-2 L1C and L2A before processing
# baseline 04.00 use offset 0; L2A from baseline 04.00 (Jan 2022) adds BOA_ADD_OFFSET = -1000.
DEFAULT_SCALE = 10000.0
DEFAULT_OFFSET = 0.0
L2A_PB04_OFFSET = -1000.0

# Every Sentinel-2 MSI band, in product order.
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")

# Band order assumed for a file whose band descriptions do not name Sentinel-2 bands and whose
# request gives no `bands`: keyed by band count.
DEFAULT_BANDS_BY_COUNT: dict[int, tuple[str, ...]] = {
    4: ("B02", "B03", "B04", "B08"),
    6: ("B02", "B03", "B04", "B08", "B11", "B12"),
    10: ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
    12: tuple(b for b in S2_BANDS if b != "B10"),  # L2A products carry no cirrus band
    13: S2_BANDS,  # L1C
}

def reflectance_inplace(x: np.ndarray, scale: float = None, offset: float = None,
                        value_range=(0.0, 1.0)) -> np.ndarray:
    """In place on float32 `x` holding DN: x = clip((x + offset) / scale, value_range).

    The transformer's FP32 path calls this; the predictor's `dn` input calls dn_to_reflectance,
    the same operations in the same order with the cast fused into the first one, so both hand the
    model identical float32 values (tests/cloudmask/test_contract_hop.py checks it bit for bit).
    """
    scale = DEFAULT_SCALE if scale is None else float(scale)
    offset = DEFAULT_OFFSET if offset is None else float(offset)
    if offset:
        x += np.float32(offset)
    x *= np.float32(1.0 / scale)
    np.clip(x, value_range[0], value_range[1], out=x)
    return x


def classes(probs: np.ndarray) -> np.ndarray:
    """(..., C) probabilities -> (...) uint8 class indexes, ties to the lower class (as argmax)."""
    if probs.shape[-1] == 3:
        # np.argmax over a 3-long last axis is ~5x slower than two comparisons and bit operations
        p0, p1, p2 = probs[..., 0], probs[..., 1], probs[..., 2]
        two = p2 > np.maximum(p0, p1)
        one = p1 > p0
        one &= ~two
        out = one.view(np.uint8)
        out |= two.view(np.uint8) << 1
        return out
    return np.argmax(probs, axis=-1).astype(np.uint8)


def dn_to_reflectance(dn: np.ndarray, scale: float = None, offset: float = None,
                      value_range=(0.0, 1.0)) -> np.ndarray:
    """Integer DN -> new float32 reflectance, the same values as reflectance_inplace(dn as float32)
    (the cast is exact for 16-bit DN and happens inside the first operation: one pass fewer)."""
    scale = DEFAULT_SCALE if scale is None else float(scale)
    offset = DEFAULT_OFFSET if offset is None else float(offset)
    if offset:
        x = np.add(dn, np.float32(offset), dtype=np.float32)
        x *= np.float32(1.0 / scale)
    else:
        x = np.multiply(dn, np.float32(1.0 / scale), dtype=np.float32)
    np.clip(x, value_range[0], value_range[1], out=x)
    return x


def quantise(probs: np.ndarray) -> np.ndarray:
    """Probabilities 0..1 -> uint8 round(255 p) (PREDICTOR_OUTPUT_U8)."""
    q = np.multiply(probs, np.float32(PROBABILITY_U8_SCALE), dtype=np.float32)
    np.rint(q, out=q)
    np.clip(q, 0, PROBABILITY_U8_SCALE, out=q)
    return q.astype(np.uint8)


BANDS_6 = ("B02", "B03", "B04", "B08", "B11", "B12")
BANDS_4 = ("B02", "B03", "B04", "B08")


@dataclasses.dataclass(frozen=True)
class ModelContract:
    """What one served model needs and gives back."""

    name: str  # V2 model name on the predictor
    bands: tuple[str, ...]  # input channel order
    description: str = ""
    classes: tuple[str, ...] = CLASS_NAMES
    input_name: str = PREDICTOR_INPUT
    output_name: str = PREDICTOR_OUTPUT
    value_range: tuple[float, float] = (0.0, 1.0)  # reflectance the net expects (clipped to this)

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["bands"] = list(self.bands)
        d["classes"] = list(self.classes)
        d["value_range"] = list(self.value_range)
        d["scaling"] = "reflectance = (DN + offset) / scale, clipped to value_range"
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelContract":
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in fields}
        return cls(**kw)


# The models the service knows, in order of preference: the first whose bands the input carries wins.
CLOUDMASK_6B = ModelContract("cloudmask-6b", BANDS_6, "U-Net, 6 bands (10 m + SWIR)")
CLOUDMASK_4B = ModelContract("cloudmask-4b", BANDS_4, "U-Net, 4 bands (10 m only)")
BASELINE_6B = ModelContract("baseline-6b", BANDS_6, "spectral tests (brightness, whiteness, NDSI, dark NIR/SWIR)")
BASELINE_4B = ModelContract("baseline-4b", BANDS_4, "spectral tests on 10 m bands (brightness, whiteness, dark NIR)")

CONTRACTS: dict[str, ModelContract] = {c.name: c for c in (CLOUDMASK_6B, CLOUDMASK_4B, BASELINE_6B, BASELINE_4B)}
# Model families: the transformer's --model_family picks one, then the bands pick the variant.
FAMILIES: dict[str, tuple[ModelContract, ...]] = {
    "cloudmask": (CLOUDMASK_6B, CLOUDMASK_4B),
    "baseline": (BASELINE_6B, BASELINE_4B),
}

CONTRACT_FILE = "contract.json"

# Processing levels. L1C is top-of-atmosphere reflectance, L2A surface reflectance; the transformer learns the level
# from the request, the file's tags, its bands or its radiometry (cloudmask/raster/level.py), or leaves it unknown.
LEVELS = ("L1C", "L2A")
UNKNOWN_LEVEL = "unknown"

# Which model answers which input: written by the serving gate (`cloudmask evaluate --gate`, cloudmask/evaluate/
# gate.py) from measured metrics, committed with the models, read here by both images. For each band-set variant of
# a family and each level (and "unknown"), the model name that serves it, e.g. {"cloudmask": {"cloudmask-6b":
# {"L1C": "baseline-6b", "L2A": "cloudmask-6b", "unknown": "baseline-6b"}}}. A variant with no entry serves itself.
ROUTES_FILE = Path(__file__).with_name("routes.json")


def load_routes(path: Path | str | None = None) -> dict:
    """The routing table: `path`, else $CLOUDMASK_ROUTES (an operator's or a test's own), else ROUTES_FILE."""
    import os

    p = Path(path or os.environ.get("CLOUDMASK_ROUTES") or ROUTES_FILE)
    if not p.is_file():
        return {}
    doc = json.loads(p.read_text())
    return doc.get("routes", {})


_ROUTES: dict[str, dict] = {}  # by the resolved path: a changed $CLOUDMASK_ROUTES is read anew


def check_routes(routes: dict) -> None:
    """Refuse a routing table that names an unknown model, or one of other bands than its variant (the transformer
    calls this at start-up, so a bad table fails there and not as a 500 on every request)."""
    if not isinstance(routes, dict):
        raise ValueError(f"routes must be an object, got {type(routes).__name__}")
    for family, variants in routes.items():
        if family not in FAMILIES or not isinstance(variants, dict):
            raise ValueError(f"routes: unknown family {family!r}")
        for variant, table in variants.items():
            v = CONTRACTS.get(variant)
            if v is None or not isinstance(table, dict):
                raise ValueError(f"routes: unknown variant {variant!r}")
            for level, name in table.items():
                if level not in (*LEVELS, UNKNOWN_LEVEL):
                    raise ValueError(f"routes: {variant}: unknown level {level!r}")
                if name not in CONTRACTS or CONTRACTS[name].bands != v.bands:
                    raise ValueError(f"routes: {variant} at {level} names {name!r}, not a model of the same bands")


def active_routes() -> dict:
    """The routing table in force (load_routes, checked, cached by path)."""
    import os

    key = str(Path(os.environ.get("CLOUDMASK_ROUTES") or ROUTES_FILE).resolve())
    if key not in _ROUTES:
        r = load_routes()
        check_routes(r)
        _ROUTES[key] = r
    return _ROUTES[key]


def route(family: str, available, level: str = UNKNOWN_LEVEL, routes: dict | None = None) -> ModelContract | None:
    """The model that answers an input of `family` carrying bands `available` at processing `level`, or None."""
    variant = choose(family, available)
    if variant is None:
        return None
    if routes is None:
        routes = active_routes()
    table = routes.get(family, {}).get(variant.name) or {}
    name = table.get(level) or table.get(UNKNOWN_LEVEL) or variant.name
    chosen = CONTRACTS.get(name)
    if chosen is None or chosen.bands != variant.bands:
        raise ValueError(f"routes: {variant.name} at {level} names {name!r}, which is not a model of the same bands")
    return chosen


def choose(family: str, available: set[str] | tuple[str, ...] | list[str]) -> ModelContract | None:
    """The first model of `family` whose bands are all in `available`, or None."""
    have = set(available)
    for c in FAMILIES[family]:
        if set(c.bands) <= have:
            return c
    return None


def write_contract(model_dir: Path, contract: ModelContract, version: str, extra: dict | None = None) -> Path:
    payload = {**contract.to_json(), "version": str(version), **(extra or {})}
    path = Path(model_dir) / CONTRACT_FILE
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def read_contract(model_dir: Path) -> tuple[ModelContract, dict]:
    raw = json.loads((Path(model_dir) / CONTRACT_FILE).read_text())
    return ModelContract.from_json(raw), raw
