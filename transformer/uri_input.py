"""Inputs by reference in a V2 request (issue 13): `uri` (BYTES [n]: one multi-band raster, or one URL per band) or
`stac_item` (BYTES [1]: the item's JSON or its URL) instead of `geotiff`, read under the operator's URI policy
(cloudmask.raster.remote) -- off unless --allowed_uri_prefixes lists prefixes.

Errors: the policy's refusals -> 403 / PERMISSION_DENIED, a source slower than the time budget -> 504 /
DEADLINE_EXCEEDED, over the byte budget -> 413 (OverBudget), anything else the request got wrong -> 400 (BadInput,
also a ValueError from reading the user's text). A NO_PROXY in the environment (remote.Misconfigured) stays a 500:
the operator's to fix.
"""

from __future__ import annotations

import struct

from grpc_interceptor.exceptions import DeadlineExceeded, PermissionDenied

from cloudmask import contract
from cloudmask.raster import reference, remote, stac
from cloudmask.raster.errors import BadInput

MAX_URIS = 32
INPUTS = (contract.INPUT_URI, contract.INPUT_STAC_ITEM)


class URIRefused(PermissionDenied):
    """gRPC PERMISSION_DENIED as it is (kserve passes grpc-interceptor's exceptions through); REST 403 (handler)."""

    def __init__(self, message: str):
        super().__init__(details=message)


class SourceTimeout(DeadlineExceeded):
    """gRPC DEADLINE_EXCEEDED; REST 504 (handler)."""

    def __init__(self, message: str):
        super().__init__(details=message)


def add_arguments(parser) -> None:
    parser.add_argument("--allowed_uri_prefixes", default="",
                        help="comma-separated URL prefixes that `uri` / `stac_item` inputs may name, e.g. "
                             "https://sentinel-cogs.s3.us-west-2.amazonaws.com/,s3://sentinel-cogs/ ; "
                             "empty (default): URI input is off (403)")
    parser.add_argument("--allowed_uri_networks", default="",
                        help="comma-separated CIDRs a URI's host may resolve to although not global (a mirror "
                             "inside the cluster); default none: loopback, link-local, private ... are refused")
    parser.add_argument("--uri_max_bytes", type=int, default=remote.DEFAULT_MAX_BYTES,
                        help="bytes one request may fetch from its URIs (413 past it)")
    parser.add_argument("--uri_timeout_seconds", type=float, default=remote.DEFAULT_TIMEOUT_S,
                        help="seconds one request may spend reading its URIs (504 past it)")
    parser.add_argument("--uri_s3_endpoint", default=None,
                        help="S3-compatible endpoint for s3:// URIs ([http://]host:port, path style); default AWS")
    parser.add_argument("--uri_s3_region", default="us-west-2", help="region of s3:// buckets (AWS)")


def policy(args) -> remote.Policy:
    return remote.Policy(args.allowed_uri_prefixes, networks=args.allowed_uri_networks,
                         max_bytes=args.uri_max_bytes, timeout_s=args.uri_timeout_seconds,
                         s3=remote.Endpoint(args.uri_s3_endpoint, args.uri_s3_region))


def reference_input(inputs) -> tuple[str, list[str]] | None:
    """(input name, its elements as text) when the request names its raster by reference; None for `geotiff`."""
    named = [i for i in inputs if i.name in INPUTS]
    if not named:
        return None
    if len(named) > 1 or any(i.name == contract.INPUT_GEOTIFF for i in inputs):
        got = ", ".join(i.name for i in inputs)
        raise BadInput(f"give one of '{contract.INPUT_GEOTIFF}', '{contract.INPUT_URI}' or "
                       f"'{contract.INPUT_STAC_ITEM}', got: {got}")
    inp = named[0]
    if inp.datatype != "BYTES":
        raise BadInput(f"input '{inp.name}' must be BYTES, got {inp.datatype}")
    n = 1 if inp.name == contract.INPUT_STAC_ITEM else MAX_URIS
    if len(inp.shape) != 1 or not 1 <= int(inp.shape[0]) <= n:
        raise BadInput(f"input '{inp.name}' must have shape [1]" if n == 1 else
                       f"input '{inp.name}' must have shape [n], 1 <= n <= {n}, got {list(inp.shape)}")
    try:
        arr = inp.as_numpy()
    except struct.error:
        raise BadInput(f"binary input '{inp.name}': each element is its length as 4 bytes (little-endian) "
                       "followed by its bytes") from None
    except Exception as e:
        raise BadInput(f"input '{inp.name}' could not be read: {e}") from None
    out = []
    for item in arr.reshape(-1):
        if isinstance(item, (bytes, bytearray)):
            try:
                item = bytes(item).decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput(f"input '{inp.name}' must be UTF-8 text") from None
        if not isinstance(item, str):
            raise BadInput(f"input '{inp.name}' holds {type(item).__name__}, expected text")
        out.append(item.strip())
    return inp.name, out


def read(pol: remote.Policy, name: str, elements: list[str], window=None, max_pixels=None, pick=None):
    """The Raster of a reference input (see cloudmask.raster.reference / stac), under `pol`."""
    try:
        with remote.reading(pol) as r:
            if name == contract.INPUT_STAC_ITEM:
                return stac.read(r, elements[0], window=window, max_pixels=max_pixels, pick=pick)
            return reference.read(r, elements, window=window, max_pixels=max_pixels, pick=pick)
    except remote.Refused as e:
        raise URIRefused(str(e)) from None
    except remote.ReadTimeout as e:
        raise SourceTimeout(str(e)) from None
    except BadInput:
        raise
    except ValueError as e:  # the user's text reached a parser that says only ValueError: still the request's fault
        raise BadInput(f"input '{name}' could not be read: {e}") from None


def handlers() -> dict:
    """REST status codes for URIRefused (403) and SourceTimeout (504), as V2 errors: {exception: handler}."""
    from fastapi.responses import JSONResponse

    async def refused(_request, exc: URIRefused):
        return JSONResponse(status_code=403, content={"error": exc.details})

    async def timed_out(_request, exc: SourceTimeout):
        return JSONResponse(status_code=504, content={"error": exc.details})

    return {URIRefused: refused, SourceTimeout: timed_out}
