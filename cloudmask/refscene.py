"""`cloudmask predict` of a scene given by reference: COG URLs (one multi-band raster, or one per band) or a STAC
item (its JSON file or its URL: .json, or a STAC API's extension-less .../items/ID), masked block by block into a
Cloud-Optimized GeoTIFF.

Client-side read (the default): this process range-reads each block's window (with its margin) through
cloudmask.raster.reference -- only the tiles under it, 20 m bands warped onto the 10 m grid, only the bands a model
uses -- and sends its pixels to the service as a `raster` tensor with their names and georeferencing, as a local
file's blocks go (cloudmask.blocks; a small GeoTIFF only when the band names cannot be told here, so the service
says what is wrong); never the whole tile in memory. Server-side read (`--server-side-read`): each request carries the reference and the block's window,
and the service reads the pixels (it must allow the URLs: --allowed_uri_prefixes).

The mask is written block by block into a tiled GeoTIFF next to --out, then copied tile by tile into the COG.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import numpy as np
import rasterio
from rasterio.windows import Window

from cloudmask import contract
from cloudmask.raster import cog, reference, remote, stac, stitch
from cloudmask.blocks import (BLOCK, MARGIN, Block, Pixels, Result, blocks, geotiff_file, needed_bands, run_bounded,
                              write_core)

# the user reads what they named: any address, one request's budget per block
CLIENT_NETWORKS = ("0.0.0.0/0", "::/0")
BLOCK_MAX_BYTES = 1 << 30


@dataclasses.dataclass
class Reference:
    """What the user pointed at: `uris` (one per band when `names` is set, else one multi-band raster), the STAC
    item's JSON text or URL (`item`, for a server-side read), tags from the item, and the grid of the finest band."""

    uris: list[str]
    names: list[str] | None
    tags: dict
    item: str | None
    width: int
    height: int
    crs: object
    transform: object
    descriptions: tuple


RASTER_EXTENSIONS = (".tif", ".tiff")


def is_item_url(text: str) -> bool:
    """Whether a `cloudmask predict` argument is one STAC item's URL: one URL (no list) whose path does not end in a
    raster extension -- .json, or a STAC API's .../collections/C/items/ID -- read as JSON, as the service's
    stac.load reads a `stac_item` URL; a raster URL has to end in .tif / .tiff anyway (remote.Policy.extensions)."""
    text = text.strip()
    if "://" not in text or "," in text:
        return False
    return not urlsplit(text).path.lower().endswith(RASTER_EXTENSIONS)


def is_reference(text: str) -> bool:
    """Whether a `cloudmask predict` argument names a reference (URL list, item JSON) rather than a local raster."""
    return "://" in text or text.lower().endswith(".json") or text.lstrip().startswith("{")


def _prefix(url: str) -> str:
    u = remote.parse(url)
    if u.scheme in ("s3", "gs"):
        return f"{u.scheme}://{u.host}/"
    return f"{u.scheme}://{urlsplit(url).netloc}/"


def client_policy(urls, max_bytes: int = BLOCK_MAX_BYTES, timeout_s: float = 300.0) -> remote.Policy:
    """The user's own reads: any address, and the user's NO_PROXY honoured (their environment, their URLs)."""
    return remote.Policy(sorted({_prefix(u) for u in urls}), networks=CLIENT_NETWORKS, max_bytes=max_bytes,
                         timeout_s=timeout_s, honour_no_proxy=True)


def open_reference(text: str, bands=None, timeout_s: float = 300.0) -> Reference:
    """Resolve a `cloudmask predict` argument: "URL[,URL...]", a STAC item's JSON file, or its URL (`is_item_url`)."""
    item_text = None
    if text.lstrip().startswith("{"):
        item_text = text
    elif "://" not in text and text.lower().endswith(".json"):
        item_text = Path(text).read_text()
    if item_text is not None or is_item_url(text):
        if item_text is None:
            text = text.strip()
            with remote.reading(client_policy([text], 16 << 20, timeout_s)) as r:
                item = stac.load(text, r)
        else:
            item = stac.load(item_text)
        assets = stac.band_assets(item)
        if not assets:
            raise ValueError(f"STAC item {item.id} has no Sentinel-2 band assets")
        names = list(assets)
        uris = [assets[b] for b in names]
        tags = stac.level_tags(item)
        ref_item = item_text if item_text is not None else text
    else:
        uris = [u.strip() for u in text.split(",") if u.strip()]
        names = [b.strip() for b in bands] if bands and len(uris) > 1 else None
        if names is None and len(uris) > 1:
            names = [reference.band_from_name(u) for u in uris]
            if None in names:
                names = None  # the files' own descriptions, read below
        tags, ref_item = {}, None
    with remote.reading(client_policy(uris, 64 << 20, timeout_s)) as r:
        if len(uris) == 1:
            src = r.open(uris[0])
            grid, descriptions = src, tuple(src.descriptions)
        else:
            if names is None:
                names = [r.open(u).descriptions[0] for u in uris]
            srcs = {b: u for b, u in zip(names, uris)}
            wanted = needed_bands(names)
            grid = min((r.open(srcs[b], "uri") for b in wanted), key=lambda s: abs(s.res[0]))
            descriptions = tuple(names)
        tags = {**grid.tags(), **tags}  # the item's word over the file's
        return Reference(uris=uris, names=names, tags=tags, item=ref_item, width=grid.width, height=grid.height,
                         crs=grid.crs, transform=grid.transform, descriptions=descriptions)


def _pick(descriptions, count):
    wanted = set(needed_bands(descriptions))
    return [i + 1 for i, d in enumerate(descriptions) if d in wanted]


def scene_level(ref: Reference, level: str | None, timeout_s: float = 300.0) -> str:
    """The level for every block: the user's, else the item's tags or the bands, else B02's radiometry read from the
    COG's overviews (at most 512 px a side), else "unknown" -- decided once, as cloudmask.blocks.file_level does."""
    from cloudmask.raster import bands as band_ops
    from cloudmask.raster import level as level_ops

    if level and level.lower() != "auto":
        return level
    canon = tuple(band_ops.normalise(d) for d in ref.descriptions)
    lvl = level_ops.from_tags(ref.tags) or level_ops.from_bands(canon)
    if lvl or "B02" not in canon:
        return lvl or contract.UNKNOWN_LEVEL
    i = canon.index("B02")
    url, band = (ref.uris[i], 1) if ref.names is not None else (ref.uris[0], i + 1)
    with remote.reading(client_policy([url], 64 << 20, timeout_s)) as r:
        src = r.open(url)
        f = max(1, int(np.ceil(max(src.width, src.height) / 512)))
        blue = src.read(band, out_shape=(max(1, src.height // f), max(1, src.width // f)), masked=True)
        offset = float(ref.tags.get("BOA_ADD_OFFSET", ref.tags.get("RADIO_ADD_OFFSET", 0.0)) or 0.0)
        refl = (blue.astype(np.float32).filled(np.nan) + offset) / contract.DEFAULT_SCALE
    return level_ops.from_radiometry(refl) or contract.UNKNOWN_LEVEL


def block_geotiff(raster, names) -> bytes:
    """A Raster read by reference -> the GeoTIFF bytes the service takes (band descriptions name the bands)."""
    with geotiff_file(raster.data, raster.crs, raster.transform, raster.nodata, names, raster.tags) as mem:
        return bytes(mem.getbuffer())


def run(ref: Reference, out_path, predict: Callable, window=None, block: int = BLOCK, margin: int = MARGIN,
        concurrency: int = 2, progress: Callable[[int, int], None] | None = None, server_side: bool = False,
        timeout_s: float = 300.0) -> Result:
    """Mask `ref` (or its `window`) into the COG `out_path`.

    predict(payload, reference_window) -> client.Answer: payload is the block read here (client-side read,
    reference_window None): a blocks.Pixels when its band names are known, else its GeoTIFF bytes; or None
    (server-side read: the service reads `reference_window` of the reference)."""
    t0 = time.perf_counter()
    out_path = Path(out_path)
    region = Window(*window) if window is not None else Window(0, 0, ref.width, ref.height)
    if (region.col_off < 0 or region.row_off < 0 or region.width <= 0 or region.height <= 0
            or region.col_off + region.width > ref.width or region.row_off + region.height > ref.height):
        raise ValueError(f"window {tuple(window)} is outside the raster of {ref.width}x{ref.height} px")
    todo = blocks(region, block, margin, ref.width, ref.height)
    policy = client_policy(ref.uris, BLOCK_MAX_BYTES, timeout_s)
    counts = np.zeros(3, dtype=np.int64)
    versions, lock, sent = set(), threading.Lock(), [0]
    transform = rasterio.windows.transform(region, ref.transform)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".blocks.tif")
    prof = dict(driver="GTiff", height=int(region.height), width=int(region.width), count=1, dtype="uint8",
                crs=ref.crs, transform=transform, nodata=contract.NODATA, compress="deflate", tiled=True,
                blockxsize=512, blockysize=512, bigtiff="IF_SAFER")
    try:
        with rasterio.open(partial, "w", **prof) as dst:
            def one(b: Block):
                win = (int(b.read.col_off), int(b.read.row_off), int(b.read.width), int(b.read.height))
                if server_side:
                    ans, n = predict(None, win), 0
                else:
                    with remote.reading(policy) as r:
                        raster = reference.read(r, ref.uris, window=list(win), pick=_pick, names=ref.names,
                                                tags=ref.tags)
                    picked = [d for d in ref.descriptions if d in set(needed_bands(ref.descriptions))]
                    if len(picked) == raster.data.shape[0]:  # the pixels as they are: nothing to encode or decode
                        payload = Pixels(data=raster.data, names=picked, crs=raster.crs, transform=raster.transform,
                                         nodata=raster.nodata, tags=raster.tags)
                        n = raster.data.nbytes
                    else:
                        payload = block_geotiff(raster, ref.descriptions)
                        n = len(payload)
                    del raster
                    ans = predict(payload, None)
                with lock:
                    sent[0] += n
                    write_core(dst, b, region, ans, counts, versions)

            run_bounded(one, todo, concurrency, progress)  # at most `concurrency` blocks in memory at once
            cloud, shadow = stitch.cover_from_counts(*(int(n) for n in counts))
            version = ",".join(sorted(v for v in versions if v))
            dst.set_band_description(1, cog.DESCRIPTION)
            dst.write_colormap(1, cog.COLORMAP)
            dst.update_tags(cloudmask_model_version=version, cloud_cover=f"{cloud:.6f}", shadow_cover=f"{shadow:.6f}",
                            source=json.dumps(ref.uris if ref.item is None or "://" not in ref.item
                                              else ref.item)[:2000])
        cog.from_geotiff(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)
    return Result(width=int(region.width), height=int(region.height), cloud_cover=float(cloud),
                  shadow_cover=float(shadow), model_version=version, seconds=time.perf_counter() - t0,
                  requests=len(todo), bytes_sent=sent[0])
