"""The server's own thread pools stay at a fixed size, so a long session's thread count is flat."""

from __future__ import annotations

import threading
import time

from lsp_server.server import DiffillServer


def test_the_stdin_reader_pool_never_grows_past_one_thread():
    """pygls reads stdin on `thread_pool`; busy submits would start new threads if it could."""
    pool = DiffillServer().thread_pool

    def busy() -> int:
        time.sleep(0.01)
        return threading.get_ident()

    try:
        idents = {f.result() for f in [pool.submit(busy) for _ in range(8)]}
    finally:
        pool.shutdown()
    assert len(idents) == 1
