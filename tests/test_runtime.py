"""attack.runtime.keep_freed_memory: a process that allocates and frees activation-sized blocks
reuses them instead of faulting fresh pages in each time (glibc only)."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from attack.runtime import KEEP_BLOCKS_UP_TO, freed_memory_kept, keep_freed_memory

# a network call's pattern: several live blocks of a few MB to a few tens of MB, allocated,
# touched (one byte a page) and freed again call after call
SIZES_MB = (1, 5, 17, 40, 3, 9)
PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "kept":
    from attack.runtime import keep_freed_memory
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def call():
    live = []
    for mb in %r:
        a = np.empty(mb << 20, np.uint8)
        a[::4096] = 1
        live.append(a)
call()
before = faults()
for _ in range(10):
    call()
print(faults() - before)
""" % (SIZES_MB,)

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="mallopt is glibc's")


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return int(out.stdout.strip())


@glibc
def test_freed_blocks_are_reused_not_faulted_in_again():
    pages = sum(SIZES_MB) * 256          # 4 KB pages touched by one call
    assert max(SIZES_MB) << 20 < KEEP_BLOCKS_UP_TO
    assert _faults("default") > pages        # glibc's defaults: the calls after the first fault pages in again
    assert _faults("kept") < pages // 20     # kept: the first call's blocks, reused


@glibc
def test_keep_freed_memory_says_it_took_effect_and_is_idempotent():
    assert keep_freed_memory() is True and keep_freed_memory() is True and freed_memory_kept() is True
