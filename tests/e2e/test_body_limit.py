"""The transformer's request body limit, on a real `cloudmask serve` stack on loopback (REST).

A Content-Length over --max_body_bytes gets 413 naming the limit before any byte of the body is
sent; the same server then answers a real request. (kserve's REST server would otherwise read
any body whole into memory before the model sees it.)
"""

from __future__ import annotations

import json
import socket

from cloudmask.bodylimit import DEFAULT_MAX_BODY_BYTES
from rawhttp import read_response


def _response(sock: socket.socket) -> tuple[int, bytes]:
    status, _, body = read_response(sock)
    return status, body


def test_an_oversized_body_is_refused_from_its_content_length(stack, scenes):
    too_big = DEFAULT_MAX_BODY_BYTES + 1
    with socket.create_connection((stack.host, stack.http_port), timeout=60) as s:
        s.sendall(b"POST /v2/models/cloudmask/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(too_big).encode() + b"\r\n\r\n")
        status, body = _response(s)  # not one byte of the body was sent
    assert status == 413
    error = json.loads(body)["error"]
    assert str(too_big) in error and "--max_body_bytes" in error
    # the same server answers a real request right after
    import urllib.request
    import base64

    tif = scenes["l1c4"].read_bytes()
    req = urllib.request.Request(f"{stack.url}/v2/models/cloudmask/infer", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"inputs": [{"name": "geotiff", "shape": [1], "datatype": "BYTES",
                                                              "data": [base64.b64encode(tif).decode()]}]}).encode())
    with urllib.request.urlopen(req, timeout=300) as r:
        out = json.loads(r.read())
    assert {o["name"] for o in out["outputs"]} >= {"mask", "cloud_cover", "shadow_cover"}
