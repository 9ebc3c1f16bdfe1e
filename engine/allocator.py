"""Fewer malloc arenas for a long-lived server process.

glibc's malloc gives each new thread an arena of its own, up to eight per core. A server runs
the model from several threads (request threads, the loader, ONNX Runtime's pool), and each
arena keeps the peak of the requests that ran on it: freed K/V and activation buffers stay in
the arena that held them. `diffill soak` saw the language server's RSS climb in steps from
389 MB at minute 10 to 927 MB at minute 56 (RELIABILITY.md); two arenas hold it flat.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # mallopt parameter, glibc's malloc.h
SERVER_ARENAS = 2


def limit_malloc_arenas(arenas: int = SERVER_ARENAS) -> bool:
    """Cap glibc's arenas for this process before its threads start; True when it took.

    MALLOC_ARENA_MAX in the environment wins (glibc reads it itself), and a C library
    without mallopt (musl, macOS) keeps its own allocator's behaviour."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None)
    return bool(mallopt and mallopt(M_ARENA_MAX, arenas) == 1)
