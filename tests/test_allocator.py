"""The fixed mmap threshold the servers set at start (engine/allocator.py), seen through glibc's
own count of mapped blocks (`mallinfo2().hblks`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, ctypes.util, sys
from engine.allocator import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
took = fix_mmap_threshold() if sys.argv[1] == "fixed" else False
size = 4 * 1024 * 1024  # a K/V cache's size: mapped at first under either setting
libc.free(libc.malloc(size))  # unfixed, glibc now raises its threshold past 4 MB
before = libc.mallinfo2().hblks
block = libc.malloc(size)
print(took, libc.mallinfo2().hblks - before)
"""

pytestmark = pytest.mark.skipif(
    not os.confstr("CS_GNU_LIBC_VERSION"), reason="mallopt and mallinfo2 are glibc's"
)


def mapped_after_a_free(kind: str) -> tuple[str, int]:
    """Whether the setting took, and how many blocks are mapped once a freed 4 MB block is
    asked for again."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, kind], capture_output=True, text=True, env=env, check=True
    )
    took, mapped = done.stdout.split()
    return took, int(mapped)


def test_a_fixed_threshold_keeps_large_blocks_mapped():
    assert mapped_after_a_free("fixed") == ("True", 1)


def test_without_it_glibc_moves_them_to_the_heap():
    """The control: the behaviour the fix exists for, on this C library."""
    assert mapped_after_a_free("default") == ("False", 0)


def test_a_threshold_from_the_environment_wins():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    code = "from engine.allocator import fix_mmap_threshold; print(fix_mmap_threshold())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "False"
