"""A request body limit for an ASGI app: 413 before the app reads a body that is too large.

kserve's REST server (uvicorn + FastAPI) reads a whole request body into memory before the model
sees it, and neither uvicorn nor Knative's queue-proxy nor Kourier bounds its size. BodyLimit
sits in front of the app:

- a Content-Length over the limit: 413 at once, from the header; the app is never called and no
  byte of the body is read (the server then closes the connection, as it must with an unread body);
- a Content-Length that is not a length: 400;
- no Content-Length (chunked): the body is counted as the app reads it; past the limit the
  client gets 413 and the app sees the client disconnect, so it stops reading.

Errors are V2-shaped, `{"error": "..."}`, and say the limit. Plain ASGI: nothing kserve-specific.
"""

from __future__ import annotations

import json

MIB = 1024 * 1024
# A request at the transformer's default pixel budget (4096 x 4096) fits: 13 bands of uint16
# are 416 MiB as a file, 555 MiB as base64 in REST JSON. A float32 scene of that size must be
# sent deflated or in blocks (`cloudmask predict` sends 2048 x 2048 blocks).
DEFAULT_MAX_BODY_BYTES = 640 * MIB


class BodyLimit:
    """ASGI middleware: refuse HTTP request bodies over `max_bytes` with 413."""

    def __init__(self, app, max_bytes: int = DEFAULT_MAX_BODY_BYTES, flag: str = "--max_body_bytes"):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.flag = flag

    def _limit_text(self) -> str:
        return f"{self.max_bytes} bytes ({self.max_bytes / MIB:g} MiB, {self.flag})"

    async def _refuse(self, send, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        lengths = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"]
        if lengths:
            text = lengths[0].decode("latin-1").strip()
            if len(set(lengths)) > 1 or not text.isdigit():
                return await self._refuse(send, 400, f"header Content-Length must be the body's length in bytes, "
                                                     f"got {b', '.join(lengths).decode('latin-1')!r}")
            if int(text) > self.max_bytes:
                return await self._refuse(send, 413, f"request body of {int(text)} bytes exceeds the limit of "
                                                     f"{self._limit_text()}; send a window or use `cloudmask "
                                                     "predict`, which splits large scenes into blocks")
            return await self.app(scope, receive, send)

        # no length given (chunked): count what the app reads
        seen = 0
        refused = False
        started = False

        async def counting_receive():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send, 413, f"request body exceeds the limit of {self._limit_text()} "
                                                      f"(more than {self.max_bytes} bytes received)")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:  # the client has its 413; whatever the app says after that goes nowhere
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        return await self.app(scope, counting_receive, guarded_send)
