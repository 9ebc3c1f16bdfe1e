"""The malloc arena cap the servers set at start (engine/allocator.py), counted by glibc itself:
`malloc_stats()` prints one `Arena N:` block per arena to stderr."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, ctypes.util, sys, threading
from engine.allocator import limit_malloc_arenas
took = limit_malloc_arenas() if sys.argv[1] == "capped" else False
alive = threading.Barrier(6)  # no thread ends (freeing its arena) before all allocated
def work():
    blocks = [bytearray(256 * 1024) for _ in range(4)]  # past pymalloc: real mallocs
    alive.wait()
    del blocks
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
print(took, flush=True)
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
"""

pytestmark = pytest.mark.skipif(
    not os.confstr("CS_GNU_LIBC_VERSION"), reason="mallopt arenas are glibc's"
)


def arenas(kind: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, kind], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip(), done.stderr.count("Arena ")


def test_the_cap_holds_threads_to_two_arenas():
    took, capped = arenas("capped")
    assert took == "True" and capped <= 2
    _, uncapped = arenas("uncapped")
    assert uncapped > 2  # without the cap each thread gets an arena: the test can tell
