"""`cloudmask predict` when things go wrong: one line on stderr, an exit code per kind of failure, and retries
with back-off where a retry can help (a service whose predictor is still starting)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio

from cloudmask.supervisor import Stack, free_port

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "cloudmask.cli", "predict"]


def predict(*args, timeout=300):
    t0 = time.monotonic()
    r = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def one_line_error(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_not_a_raster_is_bad_input(tmp_path):
    f = tmp_path / "notes.tif"
    f.write_text("not a raster at all")
    r, _ = predict(f, "--out", tmp_path / "m.tif", "--url", f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 2
    assert "is not a raster GDAL can read" in one_line_error(r)


@pytest.mark.parametrize("transport", ["--url", "--grpc"])
def test_unreachable_service_retries_then_exit_3(scenes, tmp_path, transport):
    where = f"http://127.0.0.1:{free_port()}" if transport == "--url" else f"127.0.0.1:{free_port()}"
    r, seconds = predict(scenes["l1c4"], "--out", tmp_path / "m.tif", transport, where, "--retries", "2")
    assert r.returncode == 3
    assert "unreachable (tried 3 times)" in one_line_error(r)
    assert seconds > 1.0  # waited 0.5 s then ~1 s between the tries


def test_refused_request_is_exit_4(stack, scenes, tmp_path):
    with rasterio.open(scenes["l1c4"]) as src:
        profile, data = src.profile, src.read()
    profile.update(count=3)
    three = tmp_path / "three.tif"
    with rasterio.open(three, "w", **profile) as dst:
        dst.write(data[:3])
        dst.descriptions = ("B02", "B03", "B04")
    r, _ = predict(three, "--out", tmp_path / "m.tif", "--url", stack.url, "--retries", "3")
    assert r.returncode == 4
    assert "refused the request (400)" in one_line_error(r) and "too few bands" in r.stderr


def test_retries_until_the_predictor_is_up(scenes, tmp_path):
    """The transformer is up, its predictor not yet (503s): predict keeps trying with back-off and succeeds."""
    s = Stack(http_port=0, grpc_port=0, model_family="baseline", log_dir=tmp_path / "logs")
    try:
        tr = s._spawn(s.transformer_cmd, "transformer")
        s._wait_ready(f"{s.url}/v2/health/live", tr, 120, "transformer")
        p = subprocess.Popen(CLI + [str(scenes["l1c4"]), "--out", str(tmp_path / "m.tif"), "--url", s.url,
                                    "--retries", "9"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # a few 503s first
        assert p.poll() is None
        s._spawn(s.predictor_cmd, "predictor")
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    finally:
        s.stop()
    with rasterio.open(tmp_path / "m.tif") as m:
        assert set(np.unique(m.read(1))) <= {0, 1, 2, 255}
