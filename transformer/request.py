"""Read the V2 request of the `cloudmask` service: the GeoTIFF bytes and its parameters.

Knows the V2 shapes (REST JSON, REST binary, gRPC) but nothing of rasters.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import struct

import numpy as np

from cloudmask import contract
from cloudmask.kserve_compat import plain_parameters, raw_span

from cloudmask.raster import level as level_ops
from cloudmask.raster.decode import Embedded
from cloudmask.raster.errors import BadInput


MAX_RASTER_SIDE = 1 << 20  # px or bands: far over any budget, so a shape's size is checked exactly before it is used
RASTER_ONLY = ("crs", "transform", "nodata", "tags")  # parameters that describe a `raster` input's pixels

OUTPUTS = (contract.OUTPUT_MASK, contract.OUTPUT_CLOUD_COVER, contract.OUTPUT_SHADOW_COVER,
           contract.OUTPUT_MASK_GEOTIFF)


@dataclasses.dataclass(frozen=True)
class Params:
    bands: tuple[str, ...] | None = None
    window: tuple[int, int, int, int] | None = None
    scale: float | None = None  # None: 1 for reflectance floats, else contract.DEFAULT_SCALE (scale.resolve)
    offset: float | None = None  # None: from the file's BOA_ADD_OFFSET tag if any, else 0
    outputs: tuple[str, ...] = ()  # requested outputs, in order; empty: the default three
    level: str | None = None  # "L1C" / "L2A" when the request says so (cloudmask.raster.level.parse); None: learn it
    # the georeferencing of a `raster` input (pixels sent as a tensor); a GeoTIFF carries its own
    crs: str | None = None
    transform: tuple[float, ...] | None = None
    nodata: float | None = None
    tags: dict | None = None


def _listish(value, what: str):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("["):
            try:
                return list(json.loads(s))
            except json.JSONDecodeError:
                raise BadInput(f"{what} is not valid JSON: {value!r}") from None
        return [v.strip() for v in s.split(",") if v.strip()]
    raise BadInput(f"{what} must be a list or a comma-separated string, got {type(value).__name__}")


def _number(value, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):  # float(True) is 1.0: a JSON `true` is not a number
        raise BadInput(f"{what} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{what} must be a number, got {value!r}") from None


def params(parameters: dict | None, requested_outputs=()) -> Params:
    try:  # gRPC InferParameter messages or REST values -> plain values
        p = plain_parameters(parameters)
    except ValueError as e:
        raise BadInput(str(e)) from None
    bands = _listish(p.get("bands"), "bands")
    window = _listish(p.get("window"), "window")
    if window is not None:
        if len(window) != 4:
            raise BadInput(f"window must be [col, row, width, height], got {window!r}")
        try:
            as_float = [float(v) for v in window]
        except (TypeError, ValueError):
            raise BadInput(f"window must hold integers, got {window!r}") from None
        if any(not f.is_integer() for f in as_float):  # never truncate 1.5 to 1 silently
            raise BadInput(f"window must hold integers, got {window!r}")
        window = tuple(int(f) for f in as_float)
    scale, offset = (_number(p.get(k), k) for k in ("scale", "offset"))
    outputs = tuple(getattr(o, "name", o) for o in (requested_outputs or ()))
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown:
        raise BadInput(f"unknown output(s) {unknown}; known: {list(OUTPUTS)}")
    level = level_ops.parse(p.get("level"))
    transform = _listish(p.get("transform"), "transform")
    if transform is not None:
        transform = tuple(_number(v, "transform") for v in transform)
    tags = p.get("tags")
    if tags is not None:
        try:
            tags = json.loads(tags) if isinstance(tags, str) else tags
        except json.JSONDecodeError:
            raise BadInput(f"tags must be a JSON object of text values, got {str(tags)[:80]!r}") from None
        if not isinstance(tags, dict):
            raise BadInput(f"tags must be a JSON object of text values, got {str(tags)[:80]!r}")
        tags = {str(k): str(v) for k, v in tags.items()}
    crs = p.get("crs")
    if crs is not None and not isinstance(crs, str):
        raise BadInput(f"crs must be text (WKT or e.g. EPSG:32633), got {type(crs).__name__}")
    return Params(bands=tuple(bands) if bands is not None else None, window=window, scale=scale,
                  offset=offset, outputs=outputs, level=level, crs=crs, transform=transform,
                  nodata=_number(p.get("nodata"), "nodata"), tags=tags)


def raster_array(inputs) -> np.ndarray | None:
    """The `raster` input as a (bands, height, width) array (binary / gRPC: a view of the received bytes, no copy;
    JSON: from its list), or None when the request has none; BadInput when it is malformed or not alone."""
    named = [i for i in inputs if i.name == contract.INPUT_RASTER]
    if not named:
        return None
    if len(inputs) != 1:
        got = ", ".join(i.name for i in inputs)
        raise BadInput(f"give one input: '{contract.INPUT_RASTER}' alone, or one of '{contract.INPUT_GEOTIFF}', "
                       f"'{contract.INPUT_URI}', '{contract.INPUT_STAC_ITEM}'; got: {got}")
    inp = named[0]
    dtype = contract.RASTER_DATATYPES.get(inp.datatype)
    if dtype is None:
        raise BadInput(f"input '{inp.name}' must be one of {', '.join(contract.RASTER_DATATYPES)}, got {inp.datatype}")
    try:
        shape = [int(v) for v in inp.shape]
    except (TypeError, ValueError):
        shape = []
    if len(shape) != 3 or min(shape) <= 0:
        raise BadInput(f"input '{inp.name}' must have shape [bands, height, width], got {list(inp.shape)}")
    if max(shape) > MAX_RASTER_SIDE:  # before any arithmetic: numpy's int64 products would wrap
        raise BadInput(f"input '{inp.name}' shape {shape}: no side may exceed {MAX_RASTER_SIDE}")
    n = math.prod(shape)  # exact
    span = raw_span(inp)
    if span is not None:
        buf, start, size = span
        if size != n * np.dtype(dtype).itemsize:
            raise BadInput(f"input '{inp.name}' holds {size} bytes, its shape {shape} of {inp.datatype} needs "
                           f"{n * np.dtype(dtype).itemsize}")
        try:
            return np.frombuffer(buf, dtype=np.dtype(dtype).newbyteorder("<"), count=n,
                                 offset=start).reshape(shape)
        except ValueError as e:
            raise BadInput(f"input '{inp.name}' could not be read as {inp.datatype} {shape}: {e}") from None
    try:
        arr = np.asarray(inp.as_numpy())
        if arr.size != n:
            raise ValueError(f"{arr.size} values for shape {shape}")
        return arr.astype(dtype, copy=False).reshape(shape)
    except Exception as e:
        raise BadInput(f"input '{inp.name}' could not be read as {inp.datatype} {shape}: {e}") from None


def geotiff_bytes(inputs) -> bytes | Embedded:
    """The one `geotiff` input: BYTES [1], raw (binary/gRPC: the file where it lies in the tensor, no
    copy) or base64 (JSON: decoded bytes)."""
    named = [i for i in inputs if i.name == contract.INPUT_GEOTIFF]
    if len(named) != 1:
        got = ", ".join(i.name for i in inputs) or "none"
        raise BadInput(f"expected one input named '{contract.INPUT_GEOTIFF}', got: {got}")
    inp = named[0]
    if inp.datatype != "BYTES":
        raise BadInput(f"input '{contract.INPUT_GEOTIFF}' must be BYTES, got {inp.datatype}")
    if list(inp.shape) != [1]:
        raise BadInput(f"input '{contract.INPUT_GEOTIFF}' must have shape [1], got {list(inp.shape)}")
    span = raw_span(inp)
    if span is not None:
        buf, start, size = span
        # one element: its 4-byte length and then exactly that many bytes; anything else goes the
        # general way below, which says what is wrong with it
        if size >= 4 and struct.unpack_from("<I", buf, start)[0] == size - 4:
            return Embedded(buf, start + 4, size - 4)
    try:
        arr = inp.as_numpy()
    except struct.error:  # kserve's BYTES reader on a body cut short of an element's length prefix
        raise BadInput(f"binary input '{contract.INPUT_GEOTIFF}' must be the file's length as 4 bytes "
                       "(little-endian) followed by the file, binary_data_size bytes in all") from None
    except Exception as e:
        raise BadInput(f"input '{contract.INPUT_GEOTIFF}' could not be read: {e}") from None
    if arr.size != 1:
        raise BadInput(f"input '{contract.INPUT_GEOTIFF}' must hold one element, got {arr.size}")
    item = arr.reshape(-1)[0]
    if isinstance(item, np.bytes_):
        item = bytes(item)
    if isinstance(item, str):  # REST JSON: base64 text
        try:
            # encoders that wrap lines (base64.encodebytes, `base64` CLI) are fine
            return base64.b64decode("".join(item.split()), validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(f"input '{contract.INPUT_GEOTIFF}' in JSON must be base64 text") from None
    if isinstance(item, bytes):
        return item
    raise BadInput(f"input '{contract.INPUT_GEOTIFF}' holds {type(item).__name__}, expected bytes")
