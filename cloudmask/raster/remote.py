"""Inputs by reference, SSRF-safe by construction: which URLs a request may name, and the one way GDAL reaches them.

URI input is off unless the operator lists allowed URL prefixes (`Policy.prefixes`). A user's URL is checked before
anything is fetched (`check`):
- schemes http, https, s3 and gs only, which this code maps to GDAL's /vsicurl/, /vsis3/ and /vsigs/; a /vsi path,
  file:// or any other scheme from the user is refused;
- no user:password@, no #fragment, no '.' or '..' path segments (also percent-encoded), no control characters,
  spaces or backslashes;
- inside an allowed prefix: same scheme, host and port, and the path under the prefix's path at a '/' boundary
  (prefix https://h/cogs covers https://h/cogs/x.tif and https://h/cogs, never https://h/cogs-other/x.tif);
- the host resolves only to globally reachable addresses: loopback, link-local, private, shared (100.64/10),
  multicast, unspecified and reserved addresses are refused (IPv6 too; IPv4-mapped, NAT64, 6to4 and Teredo
  addresses are judged by the IPv4 address inside) unless the address is in a network the operator allowed
  (`Policy.networks`, e.g. a cluster-internal mirror, or 127.0.0.0/8 in tests).

Then GDAL reaches the URL only through `EgressProxy`, an HTTP proxy inside this process on 127.0.0.1 that GDAL is
pointed at for the read (GDAL_HTTP_PROXY / GDAL_HTTPS_PROXY in a rasterio.Env scoped to the request), authenticated by
a per-request token. GDAL (libcurl) follows redirects by itself and offers no option against it, so the proxy checks
every connection it is asked for, redirects included: the host against the allow-list and the addresses it resolves
to (it connects to the address it checked, so a DNS answer that changes between check and use is not followed), and,
for plain http, the whole URL against the prefixes. For https the proxy only sees CONNECT host:port (TLS is end to
end): a redirect to another path of an allowed host is followed, one to any other host is refused. The proxy
also counts the bytes that come back and ends the request's connections past its byte budget (413) or time budget
(504); it ends them when the request is done, so no connection outlives its request's budget. libcurl would go
around any proxy for the hosts in NO_PROXY / no_proxy, redirect targets included, so with URI input on a NO_PROXY
in the environment is refused: at start (Policy, ValueError) and at each read (reading, Misconfigured); only the
client's own reads (`cloudmask predict`, honour_no_proxy) keep the user's NO_PROXY.

A raster is opened only if its first bytes are a TIFF's or BigTIFF's (read through the proxy before GDAL sees the
URL), and only with GDAL's GTiff driver: a VRT (or any format that names other files, local ones included) served
under a .tif name is refused with 400 naming the URL.

Errors name the URL: Refused (403: URI input off, not in the allow-list, an address refused, a redirect out),
BadInput (400: not a URL of a supported scheme, or it could not be read), OverBudget (413), ReadTimeout (504).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import ipaddress
import os
import secrets
import selectors
import socket
import socketserver
import threading
import time
from urllib.parse import unquote, urlsplit

from cloudmask.raster.errors import BadInput, OverBudget

# scheme a user may write -> the GDAL file system this code reads it with
SCHEMES = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/"}
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URI_CHARS = 4096
DEFAULT_MAX_BYTES = 256 * 2**20  # per request, what comes back over the network
DEFAULT_TIMEOUT_S = 60.0  # per request, all its reads together
DEFAULT_EXTENSIONS = (".tif", ".tiff", ".TIF", ".TIFF")
# the one GDAL driver a raster by reference is opened with (COGs are GeoTIFFs): never one that names other files
RASTER_DRIVER = "GTiff"
# its first bytes: classic TIFF and BigTIFF, little- and big-endian
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
TIFF_HEAD = 4


def tiff_magic(head: bytes) -> bool:
    """Whether `head` (a file's first bytes) starts as a TIFF or BigTIFF does."""
    return bytes(head[:TIFF_HEAD]) in TIFF_MAGIC

# IPv6 prefixes that carry an IPv4 address a gateway will connect to
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(BadInput):
    """The operator's policy refuses this URL (403)."""


class Misconfigured(RuntimeError):
    """The process's environment would let GDAL around the URI checks (NO_PROXY): the operator's to fix (500)."""


class ReadTimeout(BadInput):
    """Reading the URL took longer than the request's time budget (504)."""


@dataclasses.dataclass(frozen=True)
class Url:
    """A user's URL, parsed: `text` as given; scheme, host, port (None for s3/gs), `path` percent-decoded (checks),
    `target` the path and query as given (what is fetched)."""

    text: str
    scheme: str
    host: str
    port: int | None
    path: str
    target: str

    @property
    def gdal_path(self) -> str:
        """The path GDAL opens: /vsicurl/https://..., /vsis3/bucket/key, /vsigs/bucket/key."""
        if self.scheme in ("s3", "gs"):
            return f"{SCHEMES[self.scheme]}{self.host}{self.target}"
        return f"{SCHEMES[self.scheme]}{self.text}"

    def under(self, prefix: "Url") -> bool:
        if (self.scheme, self.host, self.port) != (prefix.scheme, prefix.host, prefix.port):
            return False
        p = prefix.path
        return p in ("", "/") or self.path == p.rstrip("/") or self.path.startswith(p if p.endswith("/") else p + "/")


def parse(text, what: str = "URL") -> Url:
    """A URL of a supported scheme, or BadInput naming it. Checks form only, not the allow-list."""
    if not isinstance(text, str):
        raise BadInput(f"{what} must be text, got {type(text).__name__}")
    shown = text if len(text) <= 200 else text[:200] + "..."
    if not text or len(text) > MAX_URI_CHARS:
        raise BadInput(f"{what} must be 1 to {MAX_URI_CHARS} characters, got {len(text)}")
    if any(ord(c) < 0x21 or ord(c) == 0x7F or c == "\\" for c in text) or not text.isascii():
        raise BadInput(f"{what} {shown!r} holds spaces, control characters, backslashes or non-ASCII characters; "
                       "percent-encode them")
    if text.lower().startswith("/vsi"):
        raise Refused(f"{what} {shown!r}: GDAL /vsi paths are not accepted; give an http(s), s3 or gs URL")
    try:
        parts = urlsplit(text)
    except ValueError as e:  # "Invalid IPv6 URL", ...
        raise BadInput(f"{what} {shown!r} is not a valid URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise Refused(f"{what} {shown!r}: scheme {scheme + '://' if scheme else '(none)'} is not accepted; "
                      f"give an {', '.join(s + '://' for s in SCHEMES)} URL")
    if parts.fragment or "#" in text:
        raise BadInput(f"{what} {shown!r} has a #fragment")
    if "@" in parts.netloc:
        raise BadInput(f"{what} {shown!r} carries user:password@; credentials are not accepted in URLs")
    try:
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        raise BadInput(f"{what} {shown!r} has a bad port") from None
    if port == 0:  # not "the default port": no one serves on port 0
        raise BadInput(f"{what} {shown!r} has a bad port (0)")
    if not host:
        raise BadInput(f"{what} {shown!r} has no host" + (" (bucket)" if scheme in ("s3", "gs") else ""))
    if scheme in ("s3", "gs"):
        if port is not None or not all(c.isalnum() or c in "-._" for c in host):
            raise BadInput(f"{what} {shown!r}: {scheme}://BUCKET/KEY with a plain bucket name")
    else:
        port = port or DEFAULT_PORTS[scheme]
    path = unquote(parts.path)
    if any(seg in (".", "..") for seg in path.split("/")) or "\\" in path or "\x00" in path:
        raise BadInput(f"{what} {shown!r} has '.' or '..' path segments")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Url(text=text, scheme=scheme, host=host, port=port, path=path, target=target)


def address_problem(ip, networks=()) -> str | None:
    """Why connecting to address `ip` is refused ('loopback', 'private', ...), or None when it may be used:
    globally reachable, or inside one of the allowed `networks`."""
    ip = ipaddress.ip_address(ip)
    if any(ip in n for n in networks if n.version == ip.version):
        return None
    inner = None
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            inner = ip.ipv4_mapped
        elif ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            inner = ip.sixtofour
        elif ip.teredo is not None:
            inner = ip.teredo[1]
    if inner is not None:
        why = address_problem(inner, networks)
        return f"{why} (inside {ip})" if why else None
    for name in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if not ip.is_global:
        return "not globally reachable"
    return None


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where GDAL sends s3:// or gs:// requests: `None` host means the cloud's own (virtual-hosted S3 in `region`,
    storage.googleapis.com); else an S3/GCS-compatible endpoint "[http://|https://]host[:port]" (path style)."""

    url: str | None = None
    region: str = "us-west-2"

    def parts(self) -> tuple[str, str, int]:
        u = urlsplit(self.url if "://" in self.url else "https://" + self.url)
        return u.scheme, (u.hostname or "").lower(), u.port or DEFAULT_PORTS[u.scheme]


@dataclasses.dataclass(frozen=True)
class Rule:
    """One connection the egress proxy may make: to (host, port); for plain http also only paths under `path`."""

    host: str
    port: int
    tls: bool
    path: str | None = None  # http only: "/prefix/" the request path must lie under

    def allows(self, host: str, port: int, tls: bool, path: str | None = None) -> bool:
        if (host, port, tls) != (self.host, self.port, self.tls):
            return False
        if tls or self.path is None:
            return True
        p = self.path
        return p in ("", "/") or path == p.rstrip("/") or path.startswith(p if p.endswith("/") else p + "/")


class Policy:
    """What URI input may read. prefixes: allowed URL prefixes (empty: URI input off); networks: address ranges
    allowed although not global (CIDR strings); max_bytes / timeout_s: each request's byte and time budget.
    honour_no_proxy: let NO_PROXY / no_proxy send GDAL around the proxy; only where whoever names the URLs runs the
    process (cloudmask predict reading on the client: the user's own environment, no one else's URLs). Otherwise a
    NO_PROXY in the environment is refused (`no_proxy_problem`)."""

    def __init__(self, prefixes=(), networks=(), max_bytes: int = DEFAULT_MAX_BYTES,
                 timeout_s: float = DEFAULT_TIMEOUT_S, extensions=DEFAULT_EXTENSIONS,
                 s3: Endpoint = Endpoint(), gs: Endpoint = Endpoint(), honour_no_proxy: bool = False):
        if isinstance(prefixes, str):
            prefixes = [p for p in prefixes.split(",") if p.strip()]
        if isinstance(networks, str):
            networks = [n for n in networks.split(",") if n.strip()]
        self.prefixes = tuple(parse(p.strip(), "allowed URI prefix") for p in prefixes)
        self.networks = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks)
        if max_bytes <= 0 or timeout_s <= 0:
            raise ValueError("max_bytes and timeout_s must be positive")
        self.max_bytes, self.timeout_s = int(max_bytes), float(timeout_s)
        self.extensions = tuple(extensions)
        self.s3, self.gs = s3, gs
        self.rules = tuple(r for p in self.prefixes for r in self._rules(p))
        self.honour_no_proxy = bool(honour_no_proxy)
        if self.enabled and not self.honour_no_proxy:
            no_proxy_problem(raise_it=True)

    @property
    def enabled(self) -> bool:
        return bool(self.prefixes)

    def _rules(self, p: Url):
        if p.scheme in ("http", "https"):
            yield Rule(p.host, p.port, p.scheme == "https", p.path if p.scheme == "http" else None)
            return
        ep = self.s3 if p.scheme == "s3" else self.gs
        if ep.url is None:
            if p.scheme == "s3":  # virtual-hosted style: the bucket is the host, so TLS still pins the bucket
                for host in (f"{p.host}.s3.amazonaws.com", f"{p.host}.s3.{ep.region}.amazonaws.com"):
                    yield Rule(host, 443, True)
            else:
                yield Rule("storage.googleapis.com", 443, True)
            return
        scheme, host, port = ep.parts()
        yield Rule(host, port, scheme == "https", None if scheme == "https" else f"/{p.host}{p.path}")

    def gdal_options(self) -> dict:
        """The GDAL config options for reads under this policy (besides the proxy's): no retries (a budget is a
        budget), timeouts inside the request's, no directory listings, only raster extensions opened, no .netrc or
        unverified TLS, unsigned S3/GCS (no credential or instance-metadata lookups). CPL_VSIL_CURL_USE_HEAD stays
        YES: with NO, GDAL learns the size from a GET without a range, which a fast server answers with the whole
        file before curl hangs up (measured here: 1.7 MB through the proxy to read a 100 px window, 0.13 MB with
        HEAD)."""
        opts = dict(GDAL_HTTP_MAX_RETRY="0", GDAL_HTTP_TIMEOUT=str(int(self.timeout_s) + 2),
                    GDAL_HTTP_CONNECTTIMEOUT=str(max(1, min(10, int(self.timeout_s)))),
                    GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", CPL_VSIL_CURL_USE_HEAD="YES",
                    CPL_VSIL_CURL_ALLOWED_EXTENSIONS=",".join(self.extensions),
                    GDAL_HTTP_NETRC="NO", GDAL_HTTP_UNSAFESSL="NO", GDAL_HTTP_VERSION="1.1",
                    AWS_NO_SIGN_REQUEST="YES", GS_NO_SIGN_REQUEST="YES", AWS_REGION=self.s3.region)
        if self.s3.url is not None:
            scheme, host, port = self.s3.parts()
            opts.update(AWS_S3_ENDPOINT=f"{host}:{port}", AWS_HTTPS="YES" if scheme == "https" else "NO",
                        AWS_VIRTUAL_HOSTING="FALSE")
        if self.gs.url is not None:
            scheme, host, port = self.gs.parts()
            opts.update(CPL_GS_ENDPOINT=f"{scheme}://{host}:{port}/")
        return opts


def no_proxy_problem(raise_it: bool | str = False) -> str | None:
    """Why GDAL could go around the egress proxy: NO_PROXY / no_proxy set in the environment (None when not).

    libcurl applies NO_PROXY to every connection it makes, each redirect target included, so any entry (localhost,
    .svc, an internal domain) lets a redirect from an allowed host reach that host directly, unchecked. GDAL has no
    option that overrides it, and removing it from the environment would change how the rest of the process
    (the predictor client) reaches its peers; so URI input refuses to start (Policy) and to read (reading) while it
    is set: the operator removes NO_PROXY / no_proxy from the environment of a process that reads URIs."""
    for var in ("NO_PROXY", "no_proxy"):
        value = os.environ.get(var)
        if value and value.strip():
            why = (f"{var}={value[:200]!r} is set: libcurl (GDAL) would connect to those hosts directly, around the "
                   "URI checks, also when a redirect leads there; remove NO_PROXY and no_proxy from the environment "
                   "of a process that reads URIs (or turn URI input off)")
            if raise_it:
                raise Misconfigured(why) if raise_it == "read" else ValueError(why)
            return why
    return None


def check(text, policy: Policy, what: str = "uri") -> Url:
    """The user's URL if the policy allows reading it (form, allow-list, addresses); else Refused / BadInput."""
    if not policy.enabled:
        raise Refused(f"URI input is disabled on this service: {what} {str(text)[:200]!r} refused (the operator "
                      "enables it with --allowed_uri_prefixes); send the raster as `geotiff` bytes")
    url = parse(text, what)
    if not any(url.under(p) for p in policy.prefixes):
        raise Refused(f"{what} {url.text!r} is not under an allowed URI prefix "
                      f"({', '.join(p.text for p in policy.prefixes)})")
    if url.scheme in ("http", "https"):
        resolve(url.host, url.port, policy, url.text)
    return url


def resolve(host: str, port: int, policy: Policy, shown: str) -> list[str]:
    """Every address `host` resolves to, when all may be used; else Refused naming the URL and the address."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise BadInput(f"{shown!r}: host {host} does not resolve ({e})") from None
    addrs = list(dict.fromkeys(info[4][0] for info in infos))
    for a in addrs:
        why = address_problem(a, policy.networks)
        if why:
            raise Refused(f"{shown!r}: host {host} resolves to {why} address {a}, which this service does not "
                          "connect to")
    if not addrs:
        raise BadInput(f"{shown!r}: host {host} does not resolve")
    return addrs


# -- the egress proxy ---------------------------------------------------------------------------

class Session:
    """One request's reads: its token, budgets and what the proxy saw."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.token = secrets.token_hex(16)
        self.deadline = time.monotonic() + policy.timeout_s
        self.bytes_in = 0
        self.refused: list[str] = []  # messages, first one first
        self.over_budget = self.timed_out = self.closed = False
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()

    def add(self, n: int) -> bool:
        with self._lock:
            self.bytes_in += n
            if self.bytes_in > self.policy.max_bytes:
                self.over_budget = True
            return not self.over_budget

    def live(self) -> bool:
        if time.monotonic() > self.deadline:
            self.timed_out = True
        return not (self.closed or self.timed_out or self.over_budget)

    def refuse(self, message: str) -> None:
        with self._lock:
            self.refused.append(message)

    def track(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.add(s)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            socks, self._socks = self._socks, set()
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()

    def error(self, url: str, cause: Exception | str) -> BadInput:
        """The error a failed read of `url` becomes, from what the proxy saw."""
        self.live()  # past the deadline: timed out, whoever noticed first
        if self.refused:
            _remember_refusal(url, self.refused[0])
            return Refused(f"reading {url!r}: {self.refused[0]}")
        remembered = _refusal_for(url)
        if remembered is not None:  # GDAL remembers the failed URL and asks no more: say again why it failed
            return Refused(f"reading {url!r}: {remembered}")
        if self.over_budget:
            return OverBudget(f"reading {url!r} fetched more than the byte budget of "
                              f"{self.policy.max_bytes / 2**20:.1f} MiB per request; ask for a smaller window")
        if self.timed_out:
            return ReadTimeout(f"reading {url!r} took longer than the time budget of {self.policy.timeout_s:g} s "
                               "per request")
        return BadInput(f"{url!r} could not be read as a raster: {cause}")


# URLs whose read the proxy refused (a redirect out, a refused address), most recent last: GDAL caches the failure
# and does not ask again, so a second request for the same URL would otherwise see only "does not exist"
# (written and read from the proxy's and the requests' threads: only under _REFUSED_LOCK)
_REFUSED: "collections.OrderedDict[str, str]" = collections.OrderedDict()
_REFUSED_KEPT = 1024
_REFUSED_LOCK = threading.Lock()


def _remember_refusal(url: str, message: str) -> None:
    with _REFUSED_LOCK:
        _REFUSED[url] = message
        _REFUSED.move_to_end(url)
        while len(_REFUSED) > _REFUSED_KEPT:
            _REFUSED.popitem(last=False)


def _refusal_for(url: str) -> str | None:
    with _REFUSED_LOCK:
        return _REFUSED[url] if url in _REFUSED else None


class _Refusal(Exception):
    pass


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: "_ProxyServer"

    def handle(self):
        client = self.request
        client.settimeout(10)
        session = None
        try:
            head, rest = _read_head(client)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
            headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
            session = self.server.owner.lookup(dict((k.lower(), v) for k, v in headers).get("proxy-authorization"))
            if session is None:
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n"
                               b"Connection: close\r\n\r\n")
                return
            session.track(client)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                host = host.strip("[]").lower()
                upstream = self._connect(session, host, int(port), True, None, f"https://{target}")
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _relay(client, upstream, session, rest)
                return
            try:
                url = parse(target, "redirect or request")
            except BadInput as e:
                raise _Refusal(str(e)) from None
            if url.scheme != "http":
                raise _Refusal(f"{target!r}: only http:// is proxied without CONNECT")
            upstream = self._connect(session, url.host, url.port, False, url.path, url.text)
            keep = [(k, v) for k, v in headers if k.lower() not in
                    ("proxy-authorization", "proxy-connection", "connection", "keep-alive", "host")]
            host = url.host if url.port == 80 else f"{url.host}:{url.port}"
            req = f"{method} {url.target} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in keep)
            upstream.sendall(req.encode("latin-1") + b"Connection: close\r\n\r\n" + rest)
            _answer(upstream, client, session)
        except _Refusal as e:
            if session is not None:
                session.refuse(str(e))
            with contextlib.suppress(OSError):
                body = str(e).encode("utf-8", "replace")
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                client.close()

    def _connect(self, session: Session, host: str, port: int, tls: bool, path, shown: str) -> socket.socket:
        policy = session.policy
        if not any(r.allows(host, port, tls, path) for r in policy.rules):
            raise _Refusal(f"{shown!r} is outside the allowed URI prefixes (a redirect out of the allow-list?)")
        try:
            addrs = resolve(host, port, policy, shown)
        except BadInput as e:
            raise _Refusal(str(e)) from None
        own = self.server.server_address
        last = None
        for a in addrs:
            if (a, port) == (own[0], own[1]):
                raise _Refusal(f"{shown!r} is the egress proxy itself")
            try:
                s = socket.create_connection((a, port), timeout=min(10.0, max(0.1, session.deadline - time.monotonic())))
            except OSError as e:
                last = e
                continue
            session.track(s)
            return s
        raise OSError(f"cannot connect to {host}:{port}: {last}")


def _read_head(sock: socket.socket, limit: int = 65536) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(8192)
        if not chunk:
            raise OSError("connection closed before the request head ended")
        buf += chunk
        if len(buf) > limit:
            raise OSError("request head too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _answer(upstream: socket.socket, client: socket.socket, session: Session) -> None:
    """Relay a plain-http answer, its head told `Connection: close` (one request per proxied connection)."""
    upstream.settimeout(max(0.1, session.deadline - time.monotonic()))
    try:
        head, rest = _read_head(upstream)
    except TimeoutError:
        session.timed_out = True
        return
    if not session.add(len(head) + len(rest) + 4):
        return
    lines = [ln for ln in head.split(b"\r\n")
             if ln.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive", b"proxy-connection")]
    client.sendall(b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + rest)
    _relay(client, upstream, session, b"", one_way=True)


def _relay(client: socket.socket, upstream: socket.socket, session: Session, pending: bytes,
           one_way: bool = False) -> None:
    """Copy bytes both ways (or upstream -> client only) until either side closes or the session ends, counting
    what comes back from upstream against the session's byte budget."""
    if pending:
        upstream.sendall(pending)
    sel = selectors.DefaultSelector()
    sel.register(upstream, selectors.EVENT_READ, client)
    if not one_way:
        sel.register(client, selectors.EVENT_READ, upstream)
    try:
        while session.live():
            for key, _ in sel.select(timeout=0.25):
                src, dst = key.fileobj, key.data
                data = src.recv(65536)
                if not data:
                    return
                if src is upstream and not session.add(len(data)):
                    return
                dst.sendall(data)
    finally:
        sel.close()
        with contextlib.suppress(OSError):
            upstream.close()


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "EgressProxy"


class EgressProxy:
    """The process's one way out for URI reads (see the module's doc); started on first use."""

    _instance: "EgressProxy | None" = None
    _lock = threading.Lock()

    def __init__(self):
        self._sessions: dict[str, Session] = {}
        self._server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.owner = self
        self.address = "%s:%d" % self._server.server_address
        threading.Thread(target=self._server.serve_forever, name="cloudmask-egress", daemon=True).start()

    @classmethod
    def get(cls) -> "EgressProxy":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def lookup(self, authorization: str | None) -> Session | None:
        if not authorization or not authorization.lower().startswith("basic "):
            return None
        try:
            token = base64.b64decode(authorization[6:].strip()).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return None
        s = self._sessions.get(token)
        return s if s is not None and s.live() else None

    @contextlib.contextmanager
    def session(self, policy: Policy):
        s = Session(policy)
        self._sessions[s.token] = s
        try:
            yield s
        finally:
            self._sessions.pop(s.token, None)
            s.close()

    def gdal_options(self, session: Session) -> dict:
        return dict(session.policy.gdal_options(), GDAL_HTTP_PROXY=self.address, GDAL_HTTPS_PROXY=self.address,
                    GDAL_HTTP_PROXYUSERPWD=f"{session.token}:x", GDAL_PROXY_AUTH="BASIC")


# -- reading ------------------------------------------------------------------------------------

class Reader:
    """One request's reads (see `reading`): open() checks a URL and opens it with rasterio through the proxy;
    fetch() gets a small document (a STAC item) the same way."""

    def __init__(self, policy: Policy, proxy: EgressProxy, session: Session):
        self.policy, self.proxy, self.session = policy, proxy, session
        self.current: str | None = None
        self._open: list = []

    def open(self, text, what: str = "uri"):
        import rasterio

        url = check(text, self.policy, what)
        if not url.path.endswith(self.policy.extensions):
            raise BadInput(f"{what} {url.text!r}: only rasters named {', '.join(self.policy.extensions)} are read")
        self.current = url.text
        head = self._head(url, what)
        if not tiff_magic(head):
            raise BadInput(f"{what} {url.text!r} is not a TIFF (it starts with {head[:8]!r}); only GeoTIFF / COG "
                           "rasters are read")
        try:
            # the GTiff driver only, whatever the bytes say by the time GDAL reads them (VRT, and any other driver
            # that can name further files, never sees a user's URL)
            src = rasterio.open(url.gdal_path, driver=RASTER_DRIVER)
        except Exception as e:  # rasterio's and GDAL's errors alike: what the proxy saw says which it was
            if isinstance(e, BadInput):
                raise
            raise self.session.error(url.text, e) from None
        self._open.append(src)
        return src

    def _http_url(self, url: Url) -> tuple[Url, bool]:
        """The http(s) URL GDAL reads for `url` and whether redirects are judged by the prefixes (http/https, as
        the user wrote it) or by the proxy's rules only (s3/gs, mapped onto their endpoints as GDAL maps them)."""
        if url.scheme in ("http", "https"):
            return url, True
        ep = self.policy.s3 if url.scheme == "s3" else self.policy.gs
        if ep.url is not None:
            scheme, host, port = ep.parts()
            text = f"{scheme}://{host}:{port}/{url.host}{url.target}"
        elif url.scheme == "s3":
            text = f"https://{url.host}.s3.{ep.region}.amazonaws.com{url.target}"
        else:
            text = f"https://storage.googleapis.com/{url.host}{url.target}"
        return parse(text, "endpoint URL"), False

    def _head(self, url: Url, what: str) -> bytes:
        """The first bytes of the raster at `url` (a range read through the proxy, its redirects checked)."""
        http_url, by_prefix = self._http_url(url)
        return self._get(http_url, TIFF_HEAD, what, by_prefix, {"Range": f"bytes=0-{TIFF_HEAD - 1}"},
                         ok=(200, 206), shown=url.text, cut=True)  # 200: a server that ignores ranges

    def fetch(self, text, max_bytes: int = 2**20, what: str = "stac_item", redirects: int = 5) -> bytes:
        """GET a document through the proxy, following up to `redirects` redirects, each one checked."""
        url = check(text, self.policy, what)
        if url.scheme not in ("http", "https"):
            raise BadInput(f"{what} {url.text!r}: fetch it over http(s)")
        return self._get(url, max_bytes, what, True, redirects=redirects)

    def _get(self, url: Url, max_bytes: int, what: str, by_prefix: bool, headers=None, ok=(200,),
             redirects: int = 5, shown: str | None = None, cut: bool = False) -> bytes:
        """GET `url` (http/https) through the proxy: its body, at most `max_bytes` (else OverBudget; `cut`: its
        first `max_bytes`). `shown`: the user's URL, named in errors when `url` is what it maps to. Redirects:
        each target checked against the prefixes (`by_prefix`) or the proxy's rules, before it is asked for."""
        import http.client
        from urllib.parse import urljoin

        first = shown or url.text
        for _ in range(redirects + 1):
            self.current = shown or url.text
            if url.scheme not in ("http", "https"):
                raise BadInput(f"{what} {url.text!r}: fetch it over http(s)")
            host, port = self.proxy.address.rsplit(":", 1)
            auth = {"Proxy-Authorization": "Basic " + base64.b64encode(f"{self.session.token}:x".encode()).decode()}
            timeout = max(0.1, self.session.deadline - time.monotonic())
            conn = None
            try:
                if url.scheme == "https":
                    conn = http.client.HTTPSConnection(host, int(port), timeout=timeout)
                    conn.set_tunnel(url.host, url.port, headers=auth)
                    conn.request("GET", url.target, headers=dict(headers or {}))
                else:
                    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
                    conn.request("GET", url.text, headers={**(headers or {}), **auth})
                res = conn.getresponse()
                if res.status in (301, 302, 303, 307, 308) and res.getheader("Location"):
                    target = urljoin(url.text, res.getheader("Location"))
                    if by_prefix:
                        nxt = parse(target, f"{what} redirect")
                        if not any(nxt.under(p) for p in self.policy.prefixes):
                            raise Refused(f"{what} {first!r}: the redirect to {nxt.text!r} is outside the allowed "
                                          f"URI prefixes ({', '.join(p.text for p in self.policy.prefixes)})")
                        url = check(target, self.policy, f"{what} redirect")  # its addresses
                    else:
                        url = parse(target, f"{what} redirect")
                        if not any(r.allows(url.host, url.port, url.scheme == "https", url.path)
                                   for r in self.policy.rules):
                            raise Refused(f"{what} {first!r}: redirect {target!r} is outside the allowed URI "
                                          "prefixes")
                    continue
                if res.status == 403 and self.session.refused:
                    raise self.session.error(url.text, "refused")
                if res.status not in ok:
                    raise BadInput(f"{what} {url.text!r}: HTTP {res.status} {res.reason}")
                body = res.read(max_bytes + 1)
            except (OSError, http.client.HTTPException) as e:
                raise self.session.error(url.text if by_prefix else first, e) from None
            finally:
                if conn is not None:
                    conn.close()
            if len(body) > max_bytes and cut:
                return body[:max_bytes]
            if len(body) > max_bytes:
                raise OverBudget(f"{what} {url.text!r} is larger than {max_bytes / 2**20:.1f} MiB")
            return body
        raise Refused(f"{what} {first!r}: more than {redirects} redirects")

    def close(self) -> None:
        for src in self._open:
            with contextlib.suppress(Exception):
                src.close()
        self._open.clear()


@contextlib.contextmanager
def reading(policy: Policy):
    """One request's reads under `policy`, within its byte and time budget:

        with reading(policy) as r:
            src = r.open("https://.../B02.tif")   # a rasterio dataset; read it inside the block
            data = src.read(1, window=...)

    GDAL's config (proxy, token, no retries, timeouts, allowed extensions, unsigned S3/GCS) holds inside the block
    only (rasterio.Env: thread-local in worker threads). A read that fails raises what the proxy saw: Refused,
    OverBudget, ReadTimeout, else BadInput naming the URL."""
    import rasterio
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    if policy.enabled and not policy.honour_no_proxy:
        no_proxy_problem(raise_it="read")  # set since the policy was made: still never around the proxy
    proxy = EgressProxy.get()
    with proxy.session(policy) as session, rasterio.Env(**proxy.gdal_options(session)):
        reader = Reader(policy, proxy, session)
        try:
            yield reader
        except BadInput:
            raise
        except (RasterioError, CPLE_BaseError, OSError) as e:  # GDAL failed mid-read: the proxy knows why
            if reader.current is None:
                raise
            raise session.error(reader.current, e) from None
        finally:
            reader.close()
