"""Send a raster's pixels as the service's `raster` input with cloudmask's own client over gRPC, in its own process
(tritonclient.grpc and kserve both register the V2 protos; they clash inside one process, and the tests import
kserve), and print the outcome as JSON.

usage: python raster_call.py HOST:PORT SCENE.tif OUT_DIR     (the scene's pixels, names, georeferencing and tags)
       python raster_call.py HOST:PORT --zeros B,H,W OUT_DIR  (zeros named B02,B03,... : the pixel budget)
"""

import json
import sys
from pathlib import Path

import numpy as np
import rasterio

from cloudmask.client import Client, ServiceError

target, scene, out = sys.argv[1], sys.argv[2], Path(sys.argv[-1])
c = Client(grpc=target, retries=0)
try:
    if scene == "--zeros":
        b, h, w = (int(v) for v in sys.argv[3].split(","))
        args = (np.zeros((b, h, w), np.uint16), ["B02", "B03", "B04", "B08", "B11", "B12"][:b])
        kw = {}
    else:
        with rasterio.open(scene) as src:
            args = (src.read(), list(src.descriptions))
            kw = dict(crs=src.crs, transform=src.transform, nodata=src.nodata, tags=src.tags())
    ans = c.predict_raster(*args, want_geotiff=True, **kw)
except ServiceError as e:
    print(json.dumps({"status": e.status, "message": e.message}))
else:
    np.save(out / "mask.npy", ans.mask)
    (out / "mask.tif").write_bytes(ans.mask_geotiff)
    print(json.dumps({"status": "OK", "cloud_cover": ans.cloud_cover, "parameters": ans.parameters}))
finally:
    c.close()
