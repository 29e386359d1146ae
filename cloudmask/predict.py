"""`cloudmask predict SCENE.tif|URL[,URL...]|ITEM.json|ITEM-URL --out MASK.tif`: mask a raster of any size through the
service, into a Cloud-Optimized GeoTIFF. A scene given by reference (COG URLs: one multi-band raster or one per band;
a STAC item's JSON file or URL) is range-read block by block here (cloudmask.refscene), or with --server-side-read the
reference goes to the service, which reads it if its operator allows the URLs.

Errors are one line on stderr, and the exit code says whose they are: 2 the input or the command line
(not a raster, a window outside it, over the decode budget), 3 the service unreachable (refused, reset,
timed out, or 503 / UNAVAILABLE still after --retries tries with back-off), 4 the service refused the
request (a 4xx naming the problem).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from cloudmask import contract

EXIT_BAD_INPUT, EXIT_UNREACHABLE, EXIT_REFUSED = 2, 3, 4
CLIENT_GDAL_CACHEMAX = 256 << 20  # bytes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="Sentinel-2 GeoTIFF (L2A or L1C, DN); or COG URLs, comma-separated (one multi-band "
                                 "raster, or one per band: .../B02.tif,.../B03.tif,...); or a STAC item (ITEM.json or its URL)")
    p.add_argument("--out", type=Path, required=True,
                   help="mask to write, a Cloud-Optimized GeoTIFF (0 clear, 1 cloud, 2 shadow, 255 nodata)")
    p.add_argument("--server-side-read", action="store_true",
                   help="for URLs or a STAC item: send the reference, and the service reads the pixels (it must allow "
                        "the URLs); default: read them here, block by block")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", default=None, help="REST endpoint of the service (default http://127.0.0.1:8080)")
    where.add_argument("--grpc", default=None, help="gRPC endpoint host:port, e.g. 127.0.0.1:8081")
    p.add_argument("--host-header", default=None,
                   help="Host header for a KServe ingress, e.g. cloudmask.default.example.com")
    p.add_argument("--bands", default=None, help="band names in file order, e.g. B02,B03,B04,B08 (when the file does not say)")
    p.add_argument("--window", default=None, help="COL,ROW,WIDTH,HEIGHT: mask only this part")
    p.add_argument("--scale", type=float, default=None, help=f"DN per reflectance unit (default {contract.DEFAULT_SCALE:g})")
    p.add_argument("--offset", type=float, default=None,
                   help="BOA_ADD_OFFSET: -1000 for L2A of processing baseline >= 04.00 (default 0)")
    p.add_argument("--level", default="auto", type=str.upper, choices=["AUTO", "L1C", "L2A", "UNKNOWN"],
                   help="processing level (default: from the file's tags or bands, else its radiometry, decided once "
                        "for the whole file so that every block is answered by the same model)")
    p.add_argument("--block", type=int, default=None,
                   help="block side for scenes larger than one request, px (default 1920: with its margins a block is "
                        "two of the service's largest chips)")
    p.add_argument("--margin", type=int, default=None, help="context read around each block, px (default 32)")
    p.add_argument("--concurrency", type=int, default=2, help="requests in flight for large scenes")
    p.add_argument("--preview", type=Path, default=None, help="also write a PNG preview (true colour + mask)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    p.add_argument("--retries", type=int, default=4,
                   help="tries again, with back-off (0.5, 1, 2, 4 s ...), a request the service could not take "
                        "(503 / UNAVAILABLE, a refused or reset connection)")


def _progress_bar(enabled: bool):
    """A rich progress bar on a terminal, nothing otherwise (logs and CI stay clean)."""
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), transient=True)
    task = bar.add_task("masking", total=None)
    lock = threading.Lock()

    def update(done, total):
        with lock:
            bar.update(task, completed=done, total=total)

    return bar, update


def _fail(message: str, code: int) -> int:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)  # one line, whatever the message held
    return code


def _window(text):
    """--window COL,ROW,WIDTH,HEIGHT -> a tuple, None when not given; ValueError when malformed."""
    if not text:
        return None
    window = tuple(int(v) for v in text.split(","))
    if len(window) != 4:
        raise ValueError
    return window


def _client_factory(args, headers, clients):
    from cloudmask.client import Client

    local = threading.local()

    def get():
        c = getattr(local, "client", None)
        if c is None:  # one connection per worker thread
            c = local.client = Client(url=None if args.grpc else (args.url or "http://127.0.0.1:8080"),
                                      grpc=args.grpc, headers=headers, timeout_s=args.timeout,
                                      retries=args.retries)
            clients.append(c)
        return c
    return get


def _service_errors(fn, args):
    """fn() -> (result, None) or (None, exit code) with the one-line error printed."""
    import rasterio

    from cloudmask.client import ServiceError, Unreachable

    try:
        return fn(), None
    except ServiceError as e:
        return None, _fail(f"the service refused the request ({e.status}): {e.message}", EXIT_REFUSED)
    except Unreachable as e:
        tries = f" (tried {args.retries + 1} times)" if e.retry and args.retries else ""
        return None, _fail(f"the service is unreachable{tries}: {e}", EXIT_UNREACHABLE)
    except (ValueError, OSError, rasterio.errors.RasterioError) as e:  # the file, the URL, the window, --out
        return None, _fail(str(e), EXIT_BAD_INPUT)


def _summary(args, res) -> int:
    summary = {"cloud_cover": round(res.cloud_cover, 6), "shadow_cover": round(res.shadow_cover, 6),
               "width": res.width, "height": res.height, "model_version": res.model_version,
               "seconds": round(res.seconds, 3), "requests": res.requests, "bytes_sent": res.bytes_sent}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.out}: {res.width}x{res.height} px, cloud {100 * res.cloud_cover:.2f} %, "
              f"shadow {100 * res.shadow_cover:.2f} %, model {res.model_version}, "
              f"{res.requests} request(s), {res.seconds:.2f} s")
    return 0


def _send_pixels(client, px, **kw):
    """One block's pixels (blocks.Pixels) as the service's `raster` input."""
    return client.predict_raster(px.data, px.names, crs=px.crs, transform=px.transform, nodata=px.nodata,
                                 tags=px.tags, **kw)


def run_reference(args: argparse.Namespace) -> int:
    """`cloudmask predict URL[,URL...]|ITEM.json|ITEM-URL`: see cloudmask.refscene."""
    from cloudmask import blocks, refscene

    try:
        window = _window(args.window)
    except ValueError:
        return _fail(f"--window must be COL,ROW,WIDTH,HEIGHT, got {args.window!r}", EXIT_BAD_INPUT)
    if args.preview:
        return _fail("--preview needs a local scene file", EXIT_BAD_INPUT)
    bands = [b.strip() for b in args.bands.split(",")] if args.bands else None
    ref, code = _service_errors(lambda: refscene.open_reference(args.scene, bands, args.timeout), args)
    if code is not None:
        return code
    level = refscene.scene_level(ref, None if args.level == "AUTO" else args.level, args.timeout)
    headers = {"Host": args.host_header} if args.host_header else None
    clients = []
    client = _client_factory(args, headers, clients)
    one_file_bands = bands if len(ref.uris) == 1 else None

    def predict(payload, ref_window):
        kw = dict(scale=args.scale, offset=args.offset, level=level)
        if isinstance(payload, blocks.Pixels):
            return _send_pixels(client(), payload, **kw)
        if payload is not None:
            return client().predict(payload, bands=one_file_bands, **kw)
        if ref.item is not None:
            return client().predict_reference(stac_item=ref.item, window=ref_window, **kw)
        return client().predict_reference(uris=ref.uris, window=ref_window,
                                          bands=bands if len(ref.uris) == 1 else ref.names, **kw)

    many = True
    bar, update = _progress_bar(many and sys.stderr.isatty())
    try:
        if bar:
            bar.start()
        res, code = _service_errors(lambda: refscene.run(
            ref, args.out, predict, window=window, block=args.block, margin=args.margin,
            concurrency=args.concurrency, progress=update, server_side=args.server_side_read,
            timeout_s=args.timeout), args)
    finally:
        if bar:
            bar.stop()
        for c in clients:
            c.close()
    return code if code is not None else _summary(args, res)


def run(args: argparse.Namespace) -> int:
    from cloudmask import blocks, refscene

    args.block = args.block or blocks.BLOCK
    args.margin = blocks.MARGIN if args.margin is None else args.margin
    if args.block % contract.CHIP_MULTIPLE or args.margin % contract.CHIP_MULTIPLE or args.block <= 0 or args.margin < 0:
        # blocks must start on the nets' pooling grid, or neighbouring blocks answer on different phases of it
        return _fail(f"--block and --margin must be multiples of {contract.CHIP_MULTIPLE} px, got {args.block} and "
                     f"{args.margin}", EXIT_BAD_INPUT)

    if refscene.is_reference(str(args.scene)):
        return run_reference(args)
    if args.server_side_read:
        return _fail("--server-side-read is for URLs or a STAC item, not a local file", EXIT_BAD_INPUT)
    args.scene = Path(args.scene)
    from cloudmask.client import ServiceError, Unreachable

    window = None
    if args.window:
        try:
            window = tuple(int(v) for v in args.window.split(","))
            if len(window) != 4:
                raise ValueError
        except ValueError:
            return _fail(f"--window must be COL,ROW,WIDTH,HEIGHT, got {args.window!r}", EXIT_BAD_INPUT)
    if not args.scene.is_file():
        return _fail(f"no such file: {args.scene}", EXIT_BAD_INPUT)
    import rasterio

    # first: everything after reads the file
    try:
        with rasterio.open(args.scene) as src:
            w, h = (window[2], window[3]) if window else (src.width, src.height)
    except rasterio.errors.RasterioIOError as e:
        return _fail(f"{args.scene} is not a raster GDAL can read: {e}", EXIT_BAD_INPUT)
    bands = [b.strip() for b in args.bands.split(",")] if args.bands else None
    level = args.level if args.level != "AUTO" else blocks.file_level(args.scene, bands, args.scale, args.offset)
    headers = {"Host": args.host_header} if args.host_header else None
    clients = []
    client = _client_factory(args, headers, clients)

    def predict(payload, server_window, names):
        if isinstance(payload, blocks.Pixels):
            return _send_pixels(client(), payload, scale=args.scale, offset=args.offset, level=level)
        return client().predict(payload, bands=names, window=server_window, scale=args.scale, offset=args.offset,
                                level=level)

    many = not blocks.one_request(w, h, args.block, args.margin)  # more than one request: worth a progress bar
    bar, update = _progress_bar(many and sys.stderr.isatty())
    # the blocks go into a tiled GeoTIFF beside --out, copied tile by tile into the COG at the end
    partial = args.out.with_name(args.out.name + ".blocks.tif")
    try:
        if bar:
            bar.start()
        # GDAL's block cache is 5 % of RAM by default: reading a whole tile through it would grow this process by
        # that much; blocks are read once, in order, so a small cache loses little (GDAL_CACHEMAX in the
        # environment still wins)
        cache = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": CLIENT_GDAL_CACHEMAX}
        with rasterio.Env(**cache):
            res = blocks.run(args.scene, partial, predict, window=window, block=args.block, margin=args.margin,
                             concurrency=args.concurrency, progress=update, bands=bands)
        from cloudmask.raster import cog

        cog.from_geotiff(partial, args.out)
    except ServiceError as e:
        return _fail(f"the service refused the request ({e.status}): {e.message}", EXIT_REFUSED)
    except Unreachable as e:
        tries = f" (tried {args.retries + 1} times)" if e.retry and args.retries else ""
        return _fail(f"the service is unreachable{tries}: {e}", EXIT_UNREACHABLE)
    except (ValueError, OSError, rasterio.errors.RasterioError) as e:  # the file, the window, --out
        return _fail(str(e), EXIT_BAD_INPUT)
    finally:
        partial.unlink(missing_ok=True)
        if bar:
            bar.stop()
        for c in clients:
            c.close()
    if args.preview:
        from cloudmask import preview

        preview.write(args.scene, args.out, args.preview, window=window, bands=bands)
    return _summary(args, res)
