"""A bounded soak of `cloudmask serve` on loopback (part of `make bench`; alone: `make soak`).

`python -m cloudmask serve` runs as its own process (the real supervisor with both components
under it, on free ports); CLIENTS clients then send real 512 x 512 x 13 Sentinel-2 chips for
SECONDS seconds, half over gRPC, half over REST binary, each client one request at a time on its
own connection. Every answer is checked (status, mask shape, covers in 0..1); anything else is
an error. Printed: requests, errors, p50/p99 latency, and the RSS of the predictor and of the
transformer at the end of the warm-up (the first WARMUP_S seconds) and at the end, with the
growth between the two (target: 0 errors, growth < 10 % for both).

Not a test: the numbers depend on the machine. Linux only (reads /proc).
    python -m bench.soak [--clients 4] [--seconds 60] [--out out/bench]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

CLIENTS, SECONDS, WARMUP_S = 4, 60.0, 15.0
GROWTH_TARGET = 0.10


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> dict[str, int]:
    """The component processes under `cloudmask serve` (pid): {"predictor": pid, "transformer": pid}."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            for name in ("predictor", "transformer"):
                if name.encode() in cmd[:3]:
                    out[name] = int(child)
    return out


def _free_port() -> int:
    from cloudmask.supervisor import free_port

    return free_port()


def start_serve(log: Path) -> tuple[subprocess.Popen, int, int]:
    http, grpc = _free_port(), _free_port()
    # the console script installed beside this Python: `cloudmask serve`, as a user runs it
    cmd = [str(Path(sys.executable).with_name("cloudmask")), "serve", "--http-port", str(http), "--grpc-port", str(grpc)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cloudmask serve exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/models/cloudmask/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, http, grpc
        except OSError:
            pass
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    raise TimeoutError(f"cloudmask serve not ready after 240 s; see {log}")


def _check(mask: np.ndarray, cloud: float, shadow: float) -> None:
    if mask.shape != (512, 512) or not (0 <= cloud <= 1 and 0 <= shadow <= 1):
        raise ValueError(f"bad answer: mask {mask.shape}, covers {cloud}, {shadow}")


def client(kind: str, http: int, grpc: int, chip: bytes, stop_at: float, lat: list, errors: list) -> None:
    import tritonclient.grpc as tg
    import tritonclient.http as th

    if kind == "grpc":
        c = tg.InferenceServerClient(f"127.0.0.1:{grpc}", channel_args=[("grpc.max_receive_message_length", -1)])

        def call():
            inp = tg.InferInput("geotiff", [1], "BYTES")
            inp.set_data_from_numpy(np.array([chip], dtype=np.object_))
            r = c.infer("cloudmask", [inp], client_timeout=120)
            _check(r.as_numpy("mask"), float(r.as_numpy("cloud_cover")[0]), float(r.as_numpy("shadow_cover")[0]))
    else:
        c = th.InferenceServerClient(f"127.0.0.1:{http}", network_timeout=120)
        outs = [th.InferRequestedOutput(o, binary_data=True) for o in ("mask", "cloud_cover", "shadow_cover")]

        def call():
            inp = th.InferInput("geotiff", [1], "BYTES")
            inp.set_data_from_numpy(np.array([chip], dtype=np.object_), binary_data=True)
            r = c.infer("cloudmask", [inp], outputs=outs)
            _check(r.as_numpy("mask"), float(r.as_numpy("cloud_cover")[0]), float(r.as_numpy("shadow_cover")[0]))
    try:
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            try:
                call()
                lat.append((time.monotonic(), time.perf_counter() - t))
            except Exception as e:  # noqa: BLE001 - every failure counts, whatever raised it
                errors.append(f"{kind}: {type(e).__name__}: {str(e)[:200]}")
    finally:
        c.close()


def soak(out: Path, clients: int = CLIENTS, seconds: float = SECONDS, warmup_s: float = WARMUP_S) -> dict:
    import rasterio

    from cloudmask import samples
    from cloudmask.blocks import block_geotiff

    out.mkdir(parents=True, exist_ok=True)
    src_path = samples.l1c_scene(out / "chip512_13b.tif", window=(600, 700, 512, 512))
    with rasterio.open(src_path) as src:
        chip = block_geotiff(src, rasterio.windows.Window(0, 0, 512, 512))
    proc, http, grpc = start_serve(out / "soak-serve.log")
    try:
        pids = children(proc.pid)
        lat: list = []
        errors: list = []
        t0 = time.monotonic()
        stop_at = t0 + warmup_s + seconds
        threads = [threading.Thread(target=client, args=("grpc" if i % 2 == 0 else "rest", http, grpc, chip,
                                                         stop_at, lat, errors), daemon=True)
                   for i in range(clients)]
        for t in threads:
            t.start()
        time.sleep(warmup_s)
        warm = {k: rss_mb(p) for k, p in pids.items()}
        peak = dict(warm)
        while time.monotonic() < stop_at:
            time.sleep(1.0)
            for k, p in pids.items():
                peak[k] = max(peak[k], rss_mb(p))
        for t in threads:
            t.join(timeout=180)
        end = {k: rss_mb(p) for k, p in pids.items()}
        restarted = children(proc.pid) != pids
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    timed = [d for at, d in lat if at >= t0 + warmup_s]
    return {"clients": clients, "seconds": seconds, "warmup_s": warmup_s, "requests": len(timed),
            "requests_total": len(lat), "errors": errors, "restarted": restarted,
            "p50": statistics.median(timed) if timed else float("nan"),
            "p99": statistics.quantiles(timed, n=100)[-1] if len(timed) >= 2 else float("nan"),
            "rss_warm": warm, "rss_end": end, "rss_peak": peak}


def report(s: dict) -> str:
    lines = [(f"\nsoak: `cloudmask serve` on loopback, {s['clients']} clients (gRPC and REST binary alternating) x "
              f"{s['seconds']:.0f} s after {s['warmup_s']:.0f} s warm-up, 512 x 512 x 13 L1C chips"),
             (f"  requests {s['requests']} ({s['requests'] / s['seconds']:.1f}/s), errors {len(s['errors'])}, "
              f"p50 {1000 * s['p50']:.0f} ms, p99 {1000 * s['p99']:.0f} ms"
              + ("; a component was restarted" if s["restarted"] else ""))]
    worst = 0.0
    for k in sorted(s["rss_warm"]):
        w, e, p = s["rss_warm"][k], s["rss_end"][k], s["rss_peak"][k]
        growth = (e - w) / w
        worst = max(worst, growth)
        lines.append(f"  {k:11s} RSS after warm-up {w:6.0f} MB, at the end {e:6.0f} MB ({100 * growth:+.1f} %), "
                     f"peak {p:6.0f} MB")
    for err in s["errors"][:5]:
        lines.append(f"  error: {err}")
    ok = not s["errors"] and worst < GROWTH_TARGET and not s["restarted"]
    lines.append(f"target: 0 errors, RSS growth < {100 * GROWTH_TARGET:.0f} % after warm-up "
                 f"({'met' if ok else 'NOT met'})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--seconds", type=float, default=SECONDS)
    ap.add_argument("--warmup", type=float, default=WARMUP_S)
    ap.add_argument("--out", type=Path, default=Path("out/bench"))
    args = ap.parse_args(argv)
    print(report(soak(args.out, args.clients, args.seconds, args.warmup)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
