"""What the transformer's memory per request rests on, measured in RSS (Linux): rasterio's MemoryFile reads bytes
where they lie (a memoryview it would copy); release_inputs lets go of kserve's views without touching the body."""

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


def test_release_inputs_drops_kserves_references_and_leaves_the_bytes_as_they_are():
    """Nothing of the body is altered: release_inputs only lets go of the tensor views."""
    from kserve.protocol.infer_type import InferInput, InferRequest

    body = big_bytes(8 * MB)
    inp = InferInput(name="geotiff", shape=[1], datatype="BYTES")
    inp._raw_data = memoryview(body)[10:]
    req = InferRequest(model_name="m", infer_inputs=[inp])
    kserve_compat.release_inputs(req)
    assert req.inputs[0]._raw_data is None and body.count(0) == 0
