"""`cloudmask serve`: both components up on loopback, answering, and gone after SIGINT/SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from cloudmask.serve import free_port

pytestmark = pytest.mark.e2e


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_until_signalled_then_stops_both(sig, tmp_path):
    http, grpc = free_port(), free_port()
    p = subprocess.Popen([sys.executable, "-m", "cloudmask.cli", "serve", "--http-port", str(http),
                          "--grpc-port", str(grpc), "--model-family", "baseline"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        url = f"http://127.0.0.1:{http}/v2/models/cloudmask/ready"
        deadline = time.monotonic() + 180
        while not _ready(url):
            assert p.poll() is None, p.stdout.read()
            assert time.monotonic() < deadline, "cloudmask serve did not become ready"
            time.sleep(0.5)
        p.send_signal(sig)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out
    assert "cloudmask stopped" in out
    # no child left behind: nothing listens on the service's ports or the predictor's any more
    predictor_port = int(re.search(r"predictor http://127\.0\.0\.1:(\d+)", out).group(1))
    for port in (http, grpc, predictor_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
