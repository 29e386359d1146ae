"""Allocator settings for the serving processes (no kserve import: the bench process uses it too).

glibc hands out every allocation over its mmap threshold (128 KiB at first, rising to the largest
block freed so far) as fresh pages and unmaps them on free, so each multi-megabyte tensor a
request copies (the gRPC message, the chips, TF's activations) page-faults anew: measured in the
transformer, joining a 3 MB hop request took 2.9 ms instead of 0.5. Keeping blocks under 32 MiB in
the heap, and the heap from being trimmed below 256 MiB, lets those pages be reused. Larger blocks
(a full-budget request's raster) are still mapped and returned on free.
"""

from __future__ import annotations

MALLOC_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum
MALLOC_TRIM_THRESHOLD = 256 * 1024 * 1024


def tune_malloc() -> bool:
    """Apply the thresholds above through mallopt (glibc only; MALLOC_*_ environment variables,
    when set, win). Returns whether they were applied."""
    import ctypes
    import ctypes.util
    import os

    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD))
