"""Which band is which: resolve Sentinel-2 band names for a raster and pick a model's bands."""

from __future__ import annotations

import re

import numpy as np

from cloudmask import contract

from .errors import BadInput

_NAME = re.compile(r"^\s*(?:S2_?)?B(?:AND)?[_ ]?0?(\d{1,2}|8A)\s*$", re.IGNORECASE)


def normalise(name: str) -> str | None:
    """'B2', 'b02', 'B8a', 'band_8A' -> 'B02', 'B02', 'B8A', 'B8A'; None if not a Sentinel-2 band."""
    if name is None:
        return None
    m = _NAME.match(str(name))
    if not m:
        return None
    num = m.group(1).upper()
    canon = "B8A" if num == "8A" else f"B{int(num):02d}"
    return canon if canon in contract.S2_BANDS else None


def resolve(descriptions, count: int, requested=None) -> tuple[str, ...]:
    """Band names of a `count`-band raster.

    Descriptions win when every band's description names a Sentinel-2 band (a file that says
    what it holds is believed); else the request's `bands`; else the documented default for
    that band count.
    """
    from_desc = [normalise(d) for d in (descriptions or ())]
    if len(from_desc) == count and all(from_desc):
        names = tuple(from_desc)
    elif requested is not None:
        if isinstance(requested, str):
            requested = [b for b in requested.split(",") if b.strip()]
        names = []
        for b in requested:
            n = normalise(b)
            if n is None:
                raise BadInput(f"unknown band name {b!r}; expected Sentinel-2 names such as B02, B8A, B11")
            names.append(n)
        if len(names) != count:
            raise BadInput(f"bands names {len(names)} bands but the raster has {count}")
        names = tuple(names)
    elif count in contract.DEFAULT_BANDS_BY_COUNT:
        names = contract.DEFAULT_BANDS_BY_COUNT[count]
    else:
        known = ", ".join(str(k) for k in sorted(contract.DEFAULT_BANDS_BY_COUNT))
        raise BadInput(
            f"cannot tell which bands a {count}-band raster holds: set band descriptions or the "
            f"`bands` parameter (defaults exist for {known} bands)"
        )
    dupes = {b for b in names if names.count(b) > 1}
    if dupes:
        raise BadInput(f"band names repeat: {sorted(dupes)}")
    return names


def choose_model(family: str, names) -> contract.ModelContract:
    c = contract.choose(family, names)
    if c is None:
        need = " or ".join(",".join(m.bands) for m in contract.FAMILIES[family])
        raise BadInput(f"too few bands for the model: have {','.join(names)}; need {need}")
    return c


def select(data: np.ndarray, names, wanted) -> np.ndarray:
    """(bands, H, W) in `names` order -> (len(wanted), H, W) in `wanted` order."""
    idx = [list(names).index(b) for b in wanted]
    return data[idx]
