"""Processing level of a Sentinel-2 raster: L1C (top of atmosphere) or L2A (surface reflectance).

The two look different (L1C carries the atmosphere's path radiance, most of it in blue), and the service may route
them to different models (cloudmask.contract.route). Evidence, strongest first:
1. the request's `level` parameter;
2. the file's metadata: PROCESSING_LEVEL / PRODUCT_TYPE / LEVEL tags as ESA's SAFE, GDAL's SENTINEL2 driver and
   most exporters write them, or a BOA_ADD_OFFSET / BOA_QUANTIFICATION_VALUE tag (only L2A products carry those);
3. the bands: B10 (cirrus) exists only in L1C products -- L2A drops it;
4. radiometry: the darkest 1 % of valid blue pixels below DARK_BLUE_L2A reflectance. Top-of-atmosphere blue keeps
   at least the Rayleigh path radiance (~0.04..0.11 over land, see cloudmask.train.augment.PATH_RADIANCE), so such
   dark blue is surface reflectance. The reverse does not hold (bright arid land, snow and cloud-covered L2A scenes
   have bright darkest pixels too), so radiometry never says L1C.
Otherwise the level is "unknown", and the routing table's "unknown" entry answers (the model that is safe for both).
"""

from __future__ import annotations

import numpy as np

from cloudmask.contract import LEVELS, UNKNOWN_LEVEL

from .errors import BadInput

DARK_BLUE_L2A = 0.03
_L1C_WORDS = ("L1C", "LEVEL-1C", "LEVEL1C", "S2MSI1C", "MSIL1C", "TOA")
_L2A_WORDS = ("L2A", "LEVEL-2A", "LEVEL2A", "S2MSI2A", "MSIL2A", "BOA")
# specific keys only: a generic LEVEL tag may be anything (a pyramid level, a quality level)
_LEVEL_TAGS = ("PROCESSING_LEVEL", "PRODUCT_TYPE", "PROCESSINGLEVEL", "PRODUCTTYPE")
_TAG_WORDS = {"L1C", "LEVEL-1C", "LEVEL1C", "S2MSI1C", "MSIL1C", "L2A", "LEVEL-2A", "LEVEL2A", "S2MSI2A", "MSIL2A"}
_L2A_ONLY_TAGS = ("BOA_ADD_OFFSET", "BOA_QUANTIFICATION_VALUE", "BOA_QUANTIFICATION_VALUE_1")


def parse(value) -> str | None:
    """A level as users write it ("L1C", "l2a", "Level-2A", "S2MSI1C", "TOA", "BOA") -> "L1C" / "L2A"; "unknown"
    (do not guess: the route that is safe for both levels; what a block-wise client sends when the whole file did
    not tell, so that every block gets the same model); None when empty or "auto" (learn it); BadInput otherwise."""
    if value is None or str(value).strip().lower() in ("", "auto"):
        return None
    if str(value).strip().lower() == UNKNOWN_LEVEL:
        return UNKNOWN_LEVEL
    word = str(value).strip().upper().replace("_", "-")
    if word in _L1C_WORDS:
        return "L1C"
    if word in _L2A_WORDS:
        return "L2A"
    raise BadInput(f"level must be one of {', '.join(LEVELS)} (or Level-1C / Level-2A, S2MSI1C / S2MSI2A), "
                   f"{UNKNOWN_LEVEL} or auto, got {value!r}")


def from_tags(tags: dict) -> str | None:
    """The level the file's metadata states, or None."""
    upper = {str(k).upper(): v for k, v in (tags or {}).items()}
    for key in _LEVEL_TAGS:
        if key in upper and str(upper[key]).strip().upper().replace("_", "-") in _TAG_WORDS:
            try:
                lvl = parse(upper[key])
                if lvl in LEVELS:
                    return lvl
            except BadInput:
                continue  # a product type such as "S2MSI" that says nothing of the level: look further
    if any(k in upper for k in _L2A_ONLY_TAGS):
        return "L2A"
    return None


def from_bands(names) -> str | None:
    return "L1C" if "B10" in tuple(names or ()) else None


def from_radiometry(blue: np.ndarray | None, invalid: np.ndarray | None = None) -> str | None:
    """blue: (H, W) reflectance 0..1 of B02."""
    if blue is None or blue.size == 0:
        return None
    v = np.asarray(blue, np.float32)
    ok = np.isfinite(v) & (v > 0)
    if invalid is not None:
        ok &= ~invalid
    if ok.sum() < 100:  # too few pixels for a percentile that means anything
        return None
    return "L2A" if float(np.percentile(v[ok], 1)) < DARK_BLUE_L2A else None


def resolve(requested, tags: dict, band_names, blue: np.ndarray | None = None,
            invalid: np.ndarray | None = None) -> tuple[str, str]:
    """(level, how it was learnt): one of "parameter", "tags", "bands", "radiometry", "none" (level "unknown")."""
    lvl = parse(requested)
    if lvl:
        return lvl, "parameter"
    for how, fn in (("tags", lambda: from_tags(tags)), ("bands", lambda: from_bands(band_names)),
                    ("radiometry", lambda: from_radiometry(blue, invalid))):
        lvl = fn()
        if lvl:
            return lvl, how
    return UNKNOWN_LEVEL, "none"
