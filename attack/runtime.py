"""Process-wide settings a compute process wants and a library must not impose on import: the
command line's entry point, the benches and each Ray actor call them for their own process."""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEEP_BLOCKS_UP_TO = 64 << 20     # blocks up to this size come from the heap, not a fresh mmap
KEEP_FREE_UP_TO = 512 << 20      # free memory the heap keeps at its top before giving it back

_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed blocks of up to 64 MiB instead of unmapping them, and keep up
    to 512 MiB of free heap instead of trimming it. A network call on a batch allocates activations
    of tens of MB; by default glibc serves each from a fresh mmap that the kernel zeroes page by
    page on first touch (a minor page fault each, counted in tests/test_runtime.py) and unmaps it
    at free. PyTorch's CPU tuning guide answers the same with jemalloc or tcmalloc. The cost: the
    process keeps its peak heap (up to 512 MiB free) for reuse. Both thresholds together: either
    alone turns glibc's adaptive threshold off and makes it worse. True when set; False off glibc
    (macOS, musl), where nothing changes. Idempotent."""
    global _kept
    if _kept is None:
        _kept = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):
                return _kept
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _kept = bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BLOCKS_UP_TO)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                         KEEP_FREE_UP_TO))
    return _kept


def freed_memory_kept() -> bool:
    """Whether keep_freed_memory took effect in this process (for a bench to report)."""
    return bool(_kept)
