"""The model thread: a cancelled engine call lets go of its memory at once."""

from __future__ import annotations

import asyncio
import gc
import weakref

import numpy as np
import pytest

from engine.errors import Cancelled
from lsp_server.scheduler import ModelWorker


def test_a_cancelled_call_frees_its_arrays_without_a_garbage_collection():
    """The caller keeps the exception (as an asyncio task does); the engine's arrays must not
    live on in the exception's traceback until the collector runs."""
    worker, held = ModelWorker(), []

    def engine(is_cancelled) -> None:
        canvas = np.zeros((1, 4, 1024, 64), dtype=np.float32)
        held.append(weakref.ref(canvas))
        raise Cancelled("a newer keystroke")

    async def call() -> BaseException:
        with pytest.raises(Cancelled, match="a newer keystroke") as caught:
            await worker.run_latest("file:///a.py", engine)
        return caught.value

    gc.disable()
    try:
        exception = asyncio.run(call())
        assert held[0]() is None
    finally:
        gc.enable()
        worker.close()
    assert worker.stopped == 1 and isinstance(exception, Cancelled)
