"""`cloudmask serve`: the predictor and the transformer as two local processes on 127.0.0.1.

The same two ModelServers KServe runs in a cluster, started here as child processes; the
transformer (the `cloudmask` service) listens on --http-port/--grpc-port, the predictor on two
more loopback ports, and the transformer reaches it over gRPC. Ctrl-C / SIGTERM stops both. A component that dies is started
again on the same ports (after 1 s, doubling up to 30 s while it keeps dying), as a pod's would be.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cloudmask import contract


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--http-port", type=int, default=8080, help="REST port of the service")
    p.add_argument("--grpc-port", type=int, default=8081, help="gRPC port of the service")
    p.add_argument("--predictor-http-port", type=int, default=0, help="predictor REST port (default: a free one)")
    p.add_argument("--predictor-grpc-port", type=int, default=0, help="predictor gRPC port (default: a free one)")
    p.add_argument("--model-dir", type=Path, default=None, help="folder of <model>/<version>/ SavedModels (default: bundled)")
    p.add_argument("--model-family", default="cloudmask", choices=["cloudmask", "baseline"])
    p.add_argument("--predictor-protocol", default="grpc-v2", choices=["grpc-v2", "v2"])
    p.add_argument("--max-pixels", type=int, default=contract.MAX_PIXELS, help="pixel budget of one request")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")


class Stack:
    """Both components as child processes; a context manager that always stops them."""

    def __init__(self, http_port=8080, grpc_port=8081, predictor_http_port=0, predictor_grpc_port=0,
                 model_dir=None, model_family="cloudmask", predictor_protocol="grpc-v2",
                 max_pixels=contract.MAX_PIXELS, host="127.0.0.1", extra_transformer_args=(), log_dir=None,
                 quiet=False):
        self.host = host
        self.http_port, self.grpc_port = http_port or free_port(), grpc_port or free_port()
        self.p_http, self.p_grpc = predictor_http_port or free_port(), predictor_grpc_port or free_port()
        py = sys.executable
        self.predictor_cmd = [py, "-m", "predictor", f"--http_port={self.p_http}", f"--grpc_port={self.p_grpc}",
                              f"--bind_address={host}"]
        if model_dir:
            self.predictor_cmd.append(f"--model_dir={model_dir}")
        target = f"{host}:{self.p_grpc}" if predictor_protocol == "grpc-v2" else f"{host}:{self.p_http}"
        self.transformer_cmd = [py, "-m", "transformer", f"--http_port={self.http_port}",
                                f"--grpc_port={self.grpc_port}", f"--bind_address={host}",
                                f"--predictor_host={target}", f"--predictor_protocol={predictor_protocol}",
                                f"--model_family={model_family}", f"--max_pixels={max_pixels}",
                                *extra_transformer_args]
        self.log_dir = Path(log_dir) if log_dir else None
        self.quiet = quiet
        self.procs: list[subprocess.Popen] = []
        self.children: dict[str, subprocess.Popen] = {}  # by name: "predictor", "transformer"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def predictor_url(self) -> str:
        return f"http://{self.host}:{self.p_http}"

    def _spawn(self, cmd, name):
        out = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "wb")
        elif self.quiet:
            out = subprocess.DEVNULL
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None, env=env)
        self.procs.append(p)
        self.children[name] = p
        return p

    def restart(self, name: str) -> subprocess.Popen:
        """Start component `name` again with its own command line (same ports)."""
        old = self.children.pop(name)
        if old in self.procs:
            self.procs.remove(old)
        return self._spawn(self.predictor_cmd if name == "predictor" else self.transformer_cmd, name)

    @staticmethod
    def _wait_ready(url: str, proc: subprocess.Popen, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{what} not ready at {url} after {timeout:.0f} s")

    def start(self, timeout: float = 180.0) -> "Stack":
        try:
            pred = self._spawn(self.predictor_cmd, "predictor")
            self._wait_ready(f"{self.predictor_url}/v2/health/ready", pred, timeout, "predictor")
            tr = self._spawn(self.transformer_cmd, "transformer")
            self._wait_ready(f"{self.url}/v2/models/cloudmask/ready", tr, timeout, "transformer")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 15.0):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
        self.children.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


RESTART_FIRST_S, RESTART_MAX_S = 1.0, 30.0
STABLE_S = 60.0  # a component that ran this long before dying starts again after RESTART_FIRST_S


def supervise(stack: Stack, stopping, poll_s: float = 0.5) -> None:
    """Until stopping(): start again each component of `stack` that exits, with back-off, saying so."""
    deaths: dict[str, int] = {}  # consecutive quick deaths per component
    started = {name: time.monotonic() for name in stack.children}
    due: dict[str, float] = {}  # component -> when to start it again
    while not stopping():
        now = time.monotonic()
        for name, proc in list(stack.children.items()):
            if name in due or proc.poll() is None:
                continue
            n = 0 if now - started[name] >= STABLE_S else deaths.get(name, 0) + 1
            deaths[name] = n
            delay = min(RESTART_MAX_S, RESTART_FIRST_S * 2 ** max(0, n - 1))
            print(f"cloudmask serve: {name} exited with code {proc.returncode}; starting it again in {delay:.0f} s",
                  file=sys.stderr, flush=True)
            due[name] = now + delay
        for name, when in list(due.items()):
            if now >= when:
                del due[name]
                stack.restart(name)
                started[name] = time.monotonic()
                print(f"cloudmask serve: {name} started again (pid {stack.children[name].pid})",
                      file=sys.stderr, flush=True)
        time.sleep(poll_s)


def run(args: argparse.Namespace) -> int:
    stack = Stack(http_port=args.http_port, grpc_port=args.grpc_port,
                  predictor_http_port=args.predictor_http_port, predictor_grpc_port=args.predictor_grpc_port,
                  model_dir=args.model_dir, model_family=args.model_family,
                  predictor_protocol=args.predictor_protocol, max_pixels=args.max_pixels, host=args.host)
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
    except (RuntimeError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"cloudmask serving: REST {stack.url}  gRPC {stack.grpc}  (predictor {stack.predictor_url}); "
          "Ctrl-C stops", flush=True)
    try:
        supervise(stack, lambda: bool(stopping))
    finally:
        stack.stop()
    print("cloudmask stopped", flush=True)
    return 0
