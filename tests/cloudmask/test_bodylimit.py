"""cloudmask.bodylimit.BodyLimit in front of a real uvicorn server on a free loopback port.

The app behind it is a small ASGI function that reads the whole body (as kserve's REST server
does) and records what it saw, so each test can tell whether the app ran and how much it read.
Requests go over raw sockets, so a test can send headers without a body and see the 413 come
back before any body byte was sent.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn

from cloudmask.bodylimit import BodyLimit
from rawhttp import read_response

LIMIT = 64 * 1024


class Recorder:
    def __init__(self):
        self.calls = []  # (bytes read, disconnected)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        n, disconnected = 0, False
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                disconnected = True
                break
            n += len(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        self.calls.append((n, disconnected))
        body = json.dumps({"read": n}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server():
    app = Recorder()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(BodyLimit(app, LIMIT), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port, app
    srv.should_exit = True
    t.join(timeout=10)


def _response(sock: socket.socket) -> tuple[int, dict, bytes]:
    return read_response(sock)


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s


def _post(port: int, body: bytes) -> tuple[int, dict, bytes]:
    with _connect(port) as s:
        s.sendall(b"POST /v2/models/cloudmask/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\n\r\n" + body)
        return _response(s)


def _chunked(port: int, body: bytes, piece: int = 8192) -> tuple[int, dict, bytes]:
    with _connect(port) as s:
        s.sendall(b"POST /v2/models/cloudmask/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for i in range(0, len(body), piece):
                part = body[i:i + piece]
                s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the rest was still on its way
        return _response(s)


def test_a_body_within_the_limit_reaches_the_app_whole(server):
    port, app = server
    before = len(app.calls)
    status, _, body = _post(port, b"x" * LIMIT)
    assert status == 200 and json.loads(body) == {"read": LIMIT}
    assert app.calls[before:] == [(LIMIT, False)]


def test_a_content_length_over_the_limit_is_refused_before_any_body_byte(server):
    port, app = server
    before = len(app.calls)
    with _connect(port) as s:
        # headers only: the 413 must come back although not one byte of the body was sent
        s.sendall(b"POST /v2/models/cloudmask/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
                  + str(10 * LIMIT).encode() + b"\r\n\r\n")
        status, headers, body = _response(s)
    assert status == 413
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert str(10 * LIMIT) in error and str(LIMIT) in error and "--max_body_bytes" in error
    assert app.calls[before:] == []  # the app never ran
    # and the server goes on serving
    assert _post(port, b"ok")[0] == 200


def test_a_chunked_body_over_the_limit_gets_413_and_the_app_sees_a_disconnect(server):
    port, app = server
    before = len(app.calls)
    status, _, body = _chunked(port, b"y" * (4 * LIMIT))
    assert status == 413 and str(LIMIT) in json.loads(body)["error"]
    (read, disconnected), = app.calls[before:]
    assert disconnected and read <= LIMIT  # the piece that crossed the limit never reached the app
    assert _post(port, b"ok")[0] == 200


def test_a_chunked_body_within_the_limit_reaches_the_app_whole(server):
    port, app = server
    before = len(app.calls)
    status, _, body = _chunked(port, b"z" * (LIMIT // 2))
    assert status == 200 and json.loads(body) == {"read": LIMIT // 2}
    assert app.calls[before:] == [(LIMIT // 2, False)]


def _call(middleware, headers) -> list[dict]:
    """One HTTP request straight through the ASGI interface (headers the HTTP server would not pass)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg):
        sent.append(msg)

    asyncio.run(middleware({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive, send))
    return sent


@pytest.mark.parametrize("values", [[b"12x"], [b"-1"], [b"10", b"20"]])
def test_a_content_length_that_is_not_a_length_is_a_400(values):
    app = Recorder()
    sent = _call(BodyLimit(app, LIMIT), [(b"content-length", v) for v in values])
    assert sent[0]["status"] == 400 and "Content-Length" in json.loads(sent[1]["body"])["error"]
    assert app.calls == []


def test_websockets_and_lifespan_pass_through_and_the_limit_must_be_positive():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(BodyLimit(app, LIMIT)({"type": "websocket", "headers": []}, None, None))
    assert seen == ["websocket"]
    with pytest.raises(ValueError):
        BodyLimit(app, 0)
