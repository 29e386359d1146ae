"""DN -> reflectance, and which pixels are nodata."""

from __future__ import annotations

import numpy as np

from cloudmask import contract

from .errors import BadInput


# Float pixels whose valid values all lie at or below this are reflectance already (scale 1), not DN:
# bright cloud and snow reach ~1.5 TOA, while DN of 2 would be a black scene (0.0002 reflectance).
REFLECTANCE_MAX = 2.0


def check(scale: float, offset: float) -> tuple[float, float]:
    """scale a positive finite number; offset (DN) at most one reflectance unit (`scale`) either way --
    Sentinel-2 products carry -1000 at scale 10000, and anything past +-scale moves every pixel out of
    the reflectance range (1e39 would make the whole scene cloud)."""
    if isinstance(scale, bool) or isinstance(offset, bool):
        raise BadInput(f"scale and offset must be numbers, not true/false; got {scale!r}, {offset!r}")
    try:
        scale, offset = float(scale), float(offset)
    except (TypeError, ValueError):
        raise BadInput(f"scale and offset must be numbers, got {scale!r}, {offset!r}") from None
    if not np.isfinite(scale) or scale <= 0:
        raise BadInput(f"scale must be a positive finite number, got {scale}")
    if not np.isfinite(offset) or abs(offset) > scale:
        raise BadInput(f"offset must be finite and within +-scale ({scale:g}), got {offset}")
    return scale, offset


def is_reflectance(data: np.ndarray, invalid: np.ndarray) -> bool:
    """Float pixels already in reflectance units: every valid value <= REFLECTANCE_MAX."""
    if not np.issubdtype(data.dtype, np.floating):
        return False
    valid = ~invalid
    return not valid.any() or all(float(band[valid].max()) <= REFLECTANCE_MAX for band in data)


def resolve(data: np.ndarray, invalid: np.ndarray, scale=None, offset=None, file_offset=None):
    """(scale, offset) for a request: what it gave, else reflectance floats get scale 1 and offset 0
    (a file's BOA_ADD_OFFSET tag is in DN), DN the default scale and the file's offset (or 0)."""
    reflectance = scale is None and is_reflectance(data, invalid)
    if scale is None:
        scale = 1.0 if reflectance else contract.DEFAULT_SCALE
    if offset is None:
        offset = 0.0 if reflectance else (file_offset or 0.0)
    return check(scale, offset)


def nodata_mask(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """(bands, H, W) -> (H, W) bool: every band 0, or any band equal to the file's nodata value, or NaN or
    +-Inf in any band (no reflectance is infinite)."""
    has_nodata = nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata))
    if has_nodata and nodata == 0:  # "any band 0" already holds "every band 0": one pass, band by band
        invalid = data[0] == 0
        for band in data[1:]:
            invalid |= band == 0
    else:
        invalid = np.all(data == 0, axis=0)
        if has_nodata:
            invalid |= np.any(data == nodata, axis=0)
    if np.issubdtype(data.dtype, np.floating):
        invalid |= ~np.all(np.isfinite(data), axis=0)
    return invalid


def to_reflectance(data: np.ndarray, scale: float = contract.DEFAULT_SCALE,
                   offset: float = contract.DEFAULT_OFFSET,
                   value_range=(0.0, 1.0)) -> np.ndarray:
    """(bands, H, W) DN -> (H, W, bands) float32 reflectance = (DN + offset) / scale, clipped.

    Channels-last because that is the nets' layout; the clip keeps saturated or negative
    (L2A dark-object) values inside what the nets were trained on. One cast-and-transpose
    copy, then in-place arithmetic: this runs on every request.
    """
    out = np.empty(data.shape[1:] + (data.shape[0],), dtype=np.float32)
    for b in range(data.shape[0]):  # band by band: ~3x faster than one transposing copy
        np.copyto(out[..., b], data[b], casting="unsafe")
    contract.reflectance_inplace(out, scale, offset, value_range)  # what the predictor does with `dn`
    if np.issubdtype(data.dtype, np.floating):
        out[~np.isfinite(out)] = 0.0  # nodata (see nodata_mask); the clip already took +-Inf to the range ends
    return out


def channels_last(data: np.ndarray) -> np.ndarray:
    """(bands, H, W) DN -> (H, W, bands) uint16, the predictor's `dn` input: a view when the DN are
    already uint16 (cutting the chips is then the one copy, transposing as it goes)."""
    return np.moveaxis(data.astype(np.uint16, copy=False), 0, -1)


def fits_dn(data: np.ndarray) -> bool:
    """Whether DN of this dtype travel losslessly as the predictor's UINT16 `dn` input."""
    return data.dtype in (np.uint8, np.uint16)


def file_offset(tags: dict) -> float | None:
    """BOA_ADD_OFFSET from the file's tags (as written by tools that keep S2 metadata), if any."""
    for key in ("BOA_ADD_OFFSET", "boa_add_offset", "RADIO_ADD_OFFSET"):
        if key in tags:
            try:
                return float(tags[key])
            except ValueError:
                return None
    return None
