"""cloudmask.client: the gRPC request it writes by hand is the one tritonclient would write.

`_RawModelInfer` appends the BYTES tensor's contents to a serialised request head instead of letting tritonclient copy
them three times. The check: parsed back with tritonclient's own protobuf classes, the bytes equal (as a message) what
tritonclient's `infer` sends for the same inputs, outputs and parameters. tritonclient's and kserve's protos clash in
one process (and this test session imports kserve), so the comparison runs in a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys
import numpy as np
import tritonclient.grpc as tc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc._utils import _get_inference_request
from cloudmask.client import _RawModelInfer, _params

case = json.loads(sys.stdin.read())
elements = [bytes.fromhex(e) for e in case["elements"]]
params = _params(**case["params"]) or None
raw = _RawModelInfer("127.0.0.1:9", [])
ours = pb.ModelInferRequest.FromString(raw.request_bytes("cloudmask", case["input"], elements, case["outputs"], params))
inp = tc.InferInput(case["input"], [len(elements)], "BYTES")
inp.set_data_from_numpy(np.array(elements, dtype=np.object_))
theirs = _get_inference_request(model_name="cloudmask", inputs=[inp], model_version="", request_id="",
                                outputs=[tc.InferRequestedOutput(n) for n in case["outputs"]], sequence_id=0,
                                sequence_start=False, sequence_end=False, priority=0, timeout=None, parameters=params)
raw.close()
print(json.dumps({"equal": ours == theirs, "ours": str(ours)[:400], "theirs": str(theirs)[:400]}))
"""

CASES = [
    {"input": "geotiff", "elements": ["49492a00" + "00" * 300], "outputs": ["mask", "cloud_cover", "shadow_cover"],
     "params": {"bands": ["B02", "B03"], "level": "L1C", "scale": 10000, "offset": -1000}},
    {"input": "uri", "elements": [b"https://x/B02.tif".hex(), b"https://x/B03.tif".hex()],
     "outputs": ["mask", "cloud_cover", "shadow_cover", "mask_geotiff"], "params": {"window": [0, 0, 512, 512]}},
    {"input": "geotiff", "elements": [""], "outputs": ["mask"], "params": {}},
    # a payload over 2 MiB: the length varint takes four bytes
    {"input": "geotiff", "elements": ["ab" * (3 << 20)], "outputs": ["mask"], "params": {"level": "L2A"}},
]


@pytest.mark.parametrize("case", CASES, ids=["geotiff+params", "uris", "empty", "3MiB"])
def test_raw_request_is_tritonclients_request(case):
    p = subprocess.run([sys.executable, "-c", SCRIPT], input=json.dumps(case), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["equal"], (res["ours"], res["theirs"])
