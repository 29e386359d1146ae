"""Faults with real processes: a frozen predictor (SIGSTOP), a killed one started again. The transformer
answers within its deadline, says it is not ready while its predictor is gone, and uses it again at once."""

from __future__ import annotations

import base64
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from cloudmask.supervisor import Stack

pytestmark = pytest.mark.e2e

DEADLINE_S = 3
INFER = "/v2/models/cloudmask/infer"


@pytest.fixture(scope="module")
def fstack(tmp_path_factory):
    s = Stack(http_port=0, grpc_port=0, model_family="baseline", log_dir=tmp_path_factory.mktemp("fault-logs"),
              extra_transformer_args=[f"--predictor_request_timeout_seconds={DEADLINE_S}"])
    with s:
        yield s


@pytest.fixture(scope="module")
def body(scenes):
    return {"inputs": [{"name": "geotiff", "shape": [1], "datatype": "BYTES",
                        "data": [base64.b64encode(Path(scenes["l1c4"]).read_bytes()).decode()]}]}


def ready(s: Stack) -> int:
    return httpx.get(f"{s.url}/v2/health/ready", timeout=10).status_code


def wait_for(cond, timeout: float, what: str, step: float = 0.1) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f"{what} not within {timeout} s"
        time.sleep(step)
    return time.monotonic() - t0


def test_frozen_predictor_gives_504_naming_it_and_not_ready(fstack, body):
    """Before: the request hung for kserve's 600 s default and readiness stayed 200."""
    assert httpx.post(fstack.url + INFER, json=body, timeout=60).status_code == 200
    pred = fstack.children["predictor"]
    os.kill(pred.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = httpx.post(fstack.url + INFER, json=body, timeout=60)
        seconds = time.monotonic() - t0
        assert r.status_code == 504, r.text[:300]
        assert "predictor" in r.json()["error"] and f"{DEADLINE_S} s" in r.json()["error"]
        assert DEADLINE_S - 0.5 < seconds < DEADLINE_S + 5
        assert ready(fstack) == 503  # answered within ready()'s 10 s client timeout, not hanging on the predictor
        assert httpx.get(f"{fstack.url}/v2/health/live", timeout=10).status_code == 200  # alive: no restart
    finally:
        os.kill(pred.pid, signal.SIGCONT)
    wait_for(lambda: ready(fstack) == 200, 15, "readiness after SIGCONT")
    assert httpx.post(fstack.url + INFER, json=body, timeout=60).status_code == 200


def test_predictor_restarted_is_used_without_the_reconnect_back_off(fstack, body):
    """Killed: 503 at once and not ready; started again after 15 s down, used within ~1 s of its own
    readiness (before: gRPC's reconnect back-off, 14 s of further 503s after 20 s down). The bound asserted is 6 s:
    far below what the uncapped back-off gives after 15 s down, loose enough for a loaded 2-core CI machine (the
    speed itself is a bench matter, not a test's)."""
    pred = fstack.children["predictor"]
    pred.kill()
    pred.wait()
    t_down = time.monotonic()
    with httpx.Client(base_url=fstack.url, timeout=30) as c:
        while time.monotonic() - t_down < 15:  # failing requests all along: what grows the back-off
            r = c.post(INFER, json=body, timeout=10)  # at once, not after a deadline: the client timeout bounds it
            assert r.status_code == 503 and "predictor" in r.json()["error"], r.text[:300]
            assert ready(fstack) == 503
            time.sleep(0.5)
        new = fstack.restart("predictor")
        fstack._wait_ready(f"{fstack.predictor_url}/v2/health/ready", new, 180, "predictor")
        t_up = time.monotonic()
        while c.post(INFER, json=body).status_code != 200:
            assert time.monotonic() - t_up < 10, "restarted predictor not used"
            time.sleep(0.1)
        used_after = time.monotonic() - t_up
    assert used_after < 6.0, f"used {used_after:.1f} s after it was ready: the reconnect back-off is not capped"
    assert ready(fstack) == 200
