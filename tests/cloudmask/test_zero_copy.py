"""What the transformer's memory per request rests on, measured in RSS (Linux): rasterio's MemoryFile reads bytes
where they lie (a memoryview it would copy), and release_wire_pages gives a dead tensor's pages back without
touching the bytes object around it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cloudmask import kserve_compat

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
MB = 2**20


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def big_bytes(n: int = 64 * MB) -> bytes:
    b = np.random.default_rng(0).integers(1, 255, n, dtype=np.uint8).tobytes()  # every page touched, no zeros
    assert b.count(0) == 0
    return b


def test_memoryfile_reads_bytes_in_place_and_copies_a_memoryview():
    """decode.Embedded relies on it: the GeoTIFF in a 416 MB request body is read where it lies."""
    from rasterio.io import MemoryFile

    b = big_bytes()
    before = rss_mb()
    with MemoryFile(b):
        in_place = rss_mb() - before
    before = rss_mb()
    with MemoryFile(memoryview(b)[1:]):
        copied = rss_mb() - before
    assert in_place < 8, f"MemoryFile(bytes) took {in_place:.0f} MB for a 64 MB buffer"
    assert copied > 48, "MemoryFile(memoryview) no longer copies: decode.Embedded could take a view"


def test_release_wire_pages_gives_back_only_whole_pages_inside_the_view():
    import mmap

    b = big_bytes()
    start, size = 1000, len(b) - 3000  # not page aligned at either end
    head, tail = b[:start + mmap.PAGESIZE], b[start + size - mmap.PAGESIZE:]
    before = rss_mb()
    released = kserve_compat.release_wire_pages(memoryview(b)[start:start + size])
    assert released > size - 2 * mmap.PAGESIZE and released % mmap.PAGESIZE == 0
    assert before - rss_mb() > 56  # MB: the pages went back to the kernel
    assert len(b) == 64 * MB  # the object itself is intact, and so is everything outside whole pages
    # bytes in the partial first and last pages keep their values; the rest reads as zeros
    assert b[:start] == head[:start] and b[start + size:] == tail[mmap.PAGESIZE:]
    assert b.count(0) == released
    assert kserve_compat.release_wire_pages(memoryview(b)[:100]) == 0  # under two pages: nothing whole inside


def test_release_inputs_gives_back_pages_of_raw_grpc_calls_only():
    """A REST body (Starlette's, which others may read) keeps its bytes; a raw ModelInfer call's bytes (grpc's,
    registered while the call runs) give their tensor's pages back."""
    from kserve.protocol.infer_type import InferInput, InferRequest

    def request(buf):
        inp = InferInput(name="geotiff", shape=[1], datatype="BYTES")
        inp._raw_data = memoryview(buf)[10:]
        return InferRequest(model_name="m", infer_inputs=[inp])

    rest_body, wire = big_bytes(8 * MB), big_bytes(8 * MB)
    kserve_compat.release_inputs(request(rest_body))
    assert rest_body.count(0) == 0
    kserve_compat._WIRE_IN_CALL[id(wire)] = wire
    try:
        req = request(wire)
        kserve_compat.release_inputs(req)
    finally:
        del kserve_compat._WIRE_IN_CALL[id(wire)]
    assert wire.count(0) > 7 * MB and req.inputs[0]._raw_data is None
