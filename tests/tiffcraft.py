"""Hand-made TIFFs no writer produces: hostile headers for the decode and service tests."""

from __future__ import annotations

import struct
import zlib

SHORT, LONG = 3, 4


def tiff(tags: dict[int, tuple[int, list[int]]], body: bytes) -> bytes:
    """A little-endian TIFF of one IFD: tags {tag: (SHORT or LONG, values)} then `body`; the strip or
    tile offsets (273, 324), if any, are set to point at `body`."""
    extra_off = 8 + 2 + 12 * len(tags) + 4
    packed = {t: b"".join(struct.pack("<H" if typ == SHORT else "<I", v & (0xFFFF if typ == SHORT else 0xFFFFFFFF))
                          for v in vals) for t, (typ, vals) in tags.items()}
    data_off = extra_off + sum(len(r) for r in packed.values() if len(r) > 4)
    for t in (273, 324):
        if t in packed:
            n = len(tags[t][1])
            packed[t] = struct.pack(f"<{n}I", *([data_off] * n))
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


def strip_bomb(width: int, height: int, bands: int = 3, bits: int = 16) -> bytes:
    """A ~170-byte TIFF that declares one deflate strip of width x height px x `bands` (pixel-interleaved):
    GDAL must decode the whole strip to read any window of it. Written by hand because no writer produces
    it without compressing the gigabytes it declares."""
    body = zlib.compress(b"\0" * 4096, 9)
    return tiff({256: (LONG, [width]), 257: (LONG, [height]), 258: (SHORT, [bits] * bands), 259: (SHORT, [8]),
                 262: (SHORT, [1]), 273: (LONG, [0]), 277: (SHORT, [bands]), 278: (LONG, [height]),
                 279: (LONG, [len(body)]), 284: (SHORT, [1])}, body)


def non_utf8_description(tif: bytes, placeholder: str) -> bytes:
    """`tif` with the band description `placeholder` (ASCII, in GDAL's metadata tag) overwritten by as many
    bytes that are not UTF-8: the same length, so the TIFF stays valid."""
    raw = placeholder.encode()
    assert tif.count(raw) == 1
    return tif.replace(raw, b"\xff\xfe" * (len(raw) // 2) + b"\xff" * (len(raw) % 2))
