"""A real HTTP server on loopback with byte-range support, the way object stores serve COGs.

Serves the files under `root` (GET and HEAD, `Range: bytes=a-b` -> 206 with Content-Range), plus:
- /redirect/<name>: 302 to `redirects[name]` (a path on this server or any URL);
- /stall/<path>: <path>, after `stall_s` seconds (a server that does not answer in time);
- /garbage/<anything>: an answer that is not HTTP (a broken server);
- counts what it served (`served[path]` bytes, `requests`), so tests can say a read fetched only a window.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer:
    def __init__(self, root: Path, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None):
        """tls: (certificate, key) PEM files to serve https instead of http."""
        self.root = Path(root)
        self.redirects: dict[str, str] = {}
        self.served: dict[str, int] = {}
        self.stall_s = 5.0
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _serve(self, body: bool):
                path = unquote(urlsplit(self.path).path)
                with outer._lock:
                    outer.requests.append((self.command, path, self.headers.get("Range")))
                if path.startswith("/redirect/"):
                    target = outer.redirects.get(path[len("/redirect/"):])
                    if target is None:
                        return self._status(404)
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.startswith("/garbage/"):
                    self.close_connection = True
                    self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
                    return
                if path.startswith("/stall/"):
                    time.sleep(outer.stall_s)
                    path = path[len("/stall"):]
                f = (outer.root / path.lstrip("/")).resolve()
                if outer.root.resolve() not in f.parents or not f.is_file():
                    return self._status(404)
                data = f.read_bytes()
                start, end, status = 0, len(data) - 1, 200
                rng = self.headers.get("Range")
                if rng:
                    m = _RANGE.match(rng.strip())
                    if not m or (not m.group(1) and not m.group(2)):
                        return self._status(416)
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
                    else:  # suffix range: the last N bytes
                        start = max(0, len(data) - int(m.group(2)))
                    if start > end:
                        return self._status(416)
                    status = 206
                chunk = data[start:end + 1]
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if f.suffix == ".json" else "image/tiff")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(chunk)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if body:
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):  # the reader hung up (a budget cut it)
                        return
                    with outer._lock:
                        outer.served[path] = outer.served.get(path, 0) + len(chunk)

            def _status(self, code: int):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        if tls is not None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self.base = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"
