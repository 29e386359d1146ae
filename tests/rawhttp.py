"""Reading one HTTP/1.1 response off a raw socket: for tests that must control what is sent (a Content-Length with
no body behind it), which no HTTP client library does."""

from __future__ import annotations

import socket


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """(status, lower-cased headers, body of Content-Length bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    n = int(headers.get("content-length", 0))
    while len(rest) < n:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        rest += chunk
    return status, headers, rest[:n]
