"""The bit of protobuf's wire format the service writes by hand: a ModelInferRequest's raw_input_contents.

Serialising a request head with protobuf and appending the tensor bytes as field 7 gives the same message as setting
raw_input_contents, without copying a multi-megabyte tensor into a message object first. Used by the client
(cloudmask.client, with tritonclient's protos) and the transformer's hop (transformer/hop.py, with kserve's); the
reading side is cloudmask.kserve_compat.split_raw_contents.
"""

from __future__ import annotations

RAW_INPUT_CONTENTS_FIELD = 7  # inference.ModelInferRequest.raw_input_contents: repeated bytes
_LENGTH_DELIMITED = 2


def varint(n: int) -> bytes:
    """A non-negative int as a protobuf varint."""
    if n < 0:
        raise ValueError(f"varint of a negative number: {n}")
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def raw_contents_prefix(nbytes: int) -> bytes:
    """Tag and length of one raw_input_contents entry of `nbytes` bytes; the entry's bytes follow it."""
    return bytes(((RAW_INPUT_CONTENTS_FIELD << 3) | _LENGTH_DELIMITED,)) + varint(nbytes)
