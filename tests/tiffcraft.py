"""Hand-made TIFFs no writer produces: hostile headers for the decode and service tests."""

from __future__ import annotations

import struct
import zlib


def strip_bomb(width: int, height: int, bands: int = 3, bits: int = 16) -> bytes:
    """A ~170-byte little-endian TIFF that declares one deflate strip of width x height px x `bands`
    (pixel-interleaved): GDAL must decode the whole strip to read any window of it. Written by hand
    because no writer produces it without compressing the gigabytes it declares."""
    body = zlib.compress(b"\0" * 4096, 9)
    tags = {256: (4, [width]), 257: (4, [height]), 258: (3, [bits] * bands), 259: (3, [8]), 262: (3, [1]),
            273: (4, [0]), 277: (3, [bands]), 278: (4, [height]), 279: (4, [len(body)]), 284: (3, [1])}
    extra_off = 8 + 2 + 12 * len(tags) + 4
    packed = {t: b"".join(struct.pack("<H" if typ == 3 else "<I", v) for v in vals) for t, (typ, vals) in tags.items()}
    data_off = extra_off + sum(len(r) for r in packed.values() if len(r) > 4)
    packed[273] = struct.pack("<I", data_off)
    out, extra = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(tags))), bytearray()
    for tag in sorted(tags):
        typ, vals = tags[tag]
        raw = packed[tag]
        if len(raw) > 4:  # values that do not fit the entry live after the IFD
            out += struct.pack("<HHII", tag, typ, len(vals), extra_off + len(extra))
            extra += raw
        else:
            out += struct.pack("<HHI", tag, typ, len(vals)) + raw.ljust(4, b"\0")
    return bytes(out + struct.pack("<I", 0) + extra + body)


def non_utf8_description(tif: bytes, placeholder: str) -> bytes:
    """`tif` with the band description `placeholder` (ASCII, in GDAL's metadata tag) overwritten by as many
    bytes that are not UTF-8: the same length, so the TIFF stays valid."""
    raw = placeholder.encode()
    assert tif.count(raw) == 1
    return tif.replace(raw, b"\xff\xfe" * (len(raw) // 2) + b"\xff" * (len(raw) % 2))
