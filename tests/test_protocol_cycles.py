"""An answered request's failure does not keep its handler's frames alive until a full
garbage collection (lsp_server/protocol.py)."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import weakref

import numpy as np
from pygls.exceptions import JsonRpcRequestCancelled
from pygls.io_ import StdoutWriter

from lsp_server.server import DiffillServer


def test_an_answered_failure_lets_go_of_the_handler_frames():
    protocol, out, held = DiffillServer().protocol, io.BytesIO(), []
    protocol.set_writer(StdoutWriter(out))

    async def handler() -> None:
        canvas = np.zeros((1, 4, 1024, 64), dtype=np.float32)  # what an engine frame holds
        held.append(weakref.ref(canvas))
        raise JsonRpcRequestCancelled("superseded by a newer keystroke")

    async def answer() -> None:
        task = asyncio.ensure_future(handler())
        await asyncio.wait([task])
        protocol._send_handler_result(task, msg_id=7)

    # pygls logs the failure with its traceback; pytest's log capture would keep that record
    pygls_log = logging.getLogger("pygls")
    gc.disable()
    pygls_log.propagate = False
    try:
        asyncio.run(answer())
        assert held[0]() is None
    finally:
        pygls_log.propagate = True
        gc.enable()
    sent = out.getvalue().decode()
    assert '"id": 7' in sent and "superseded by a newer keystroke" in sent
