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

from cloudmask.supervisor import free_port

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


def test_serve_starts_a_dead_component_again(tmp_path):
    """kill -9 the predictor, then the transformer: each is started again on its ports with a log line, the
    service answers again, and SIGTERM still stops everything (before: serve stopped both and exited 1)."""
    import threading

    import psutil

    http, grpc = free_port(), free_port()
    p = subprocess.Popen([sys.executable, "-m", "cloudmask.cli", "serve", "--http-port", str(http),
                          "--grpc-port", str(grpc), "--model-family", "baseline"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{http}/v2/models/cloudmask/ready"

    def wait(cond, what, timeout=180):
        deadline = time.monotonic() + timeout
        while not cond():
            assert p.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"{what}:\n" + "".join(lines)
            time.sleep(0.3)

    def child(module):
        return next(c for c in psutil.Process(p.pid).children() if module in c.cmdline())

    try:
        wait(lambda: any("cloudmask serving" in x for x in lines), "cloudmask serve did not become ready")
        for module in ("predictor", "transformer"):
            old = child(module)
            old.kill()
            wait(lambda: any(f"{module} exited with code -9; starting it again" in x for x in lines),
                 f"no restart line for the {module}", 30)
            wait(lambda: any(f"{module} started again" in x for x in lines), f"{module} not started again", 30)
            assert child(module).pid != old.pid
            wait(lambda: _ready(url), f"service not ready after the {module} restarted")
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
    reader.join(10)
    assert p.returncode == 0, "".join(lines)
    assert "cloudmask stopped" in "".join(lines)
