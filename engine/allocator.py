"""glibc's malloc set up for a long-lived server process: large buffers go back to the OS.

glibc serves a block above its mmap threshold (128 KB at start) with a mapping of its own,
returned to the OS on free. But each time such a block is freed, glibc raises the threshold
to that block's size (up to 32 MB), so from then on the model's K/V and activation buffers
(hundreds of KB to 13 MB) come from the heap, where a freed block whose pages sit under live
ones stays resident. Over a long session that is RSS growing in steps (RELIABILITY.md,
section 6). Setting the threshold turns the adjustment off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # mallopt parameter, glibc's malloc.h
SERVER_MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed


def fix_mmap_threshold(size: int = SERVER_MMAP_THRESHOLD) -> bool:
    """Keep glibc's mmap threshold at `size` for this process; True when it took.

    A threshold set in the environment (MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES) wins, and a C
    library without mallopt (musl, macOS) keeps its own allocator's behaviour."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or "mmap_threshold" in tunables:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None)
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, size) == 1)
