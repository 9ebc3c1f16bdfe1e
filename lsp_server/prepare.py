"""Pre-encode the context at the edit position after `didChange`, off the event loop.

Changes are debounced per document (a burst of keystrokes costs one encode) and coalesced
(while an encode is queued on the model thread, a newer one replaces it instead of queueing
behind it). When the client's completion request arrives, only the canvas steps remain.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from engine.errors import DiffillError
from lsp_server.scheduler import ModelWorker

Job = Callable[[], None]


class Preparer:
    def __init__(self, worker: ModelWorker, on_error: Callable[[str], None]) -> None:
        self._worker, self._on_error = worker, on_error
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._queued: dict[str, Job] = {}
        self._running = 0
        self._lock = threading.Lock()

    def schedule(self, uri: str, make_job: Callable[[], Job | None], delay_s: float) -> None:
        """After `delay_s` without another change to `uri`, build the job and queue it."""
        self.cancel(uri)
        loop = asyncio.get_running_loop()
        self._timers[uri] = loop.call_later(delay_s, self._fire, uri, make_job, loop)

    def cancel(self, uri: str) -> None:
        """Drop a pending encode: a completion request for `uri` encodes the context itself."""
        if (timer := self._timers.pop(uri, None)) is not None:
            timer.cancel()
        with self._lock:
            self._queued.pop(uri, None)

    @property
    def pending(self) -> int:
        """Encodes waiting for their debounce, queued, or running."""
        return len(self._timers) + len(self._queued) + self._running

    def _fire(self, uri: str, make_job: Callable[[], Job | None], loop) -> None:
        self._timers.pop(uri, None)
        job = make_job()
        if job is None:
            return
        with self._lock:
            already_queued = uri in self._queued
            self._queued[uri] = job
        if not already_queued:
            self._worker.submit(lambda: self._run(uri, loop))

    def _run(self, uri: str, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            job = self._queued.pop(uri, None)
            self._running += job is not None
        try:
            if job is not None:
                job()
        except DiffillError as exc:
            loop.call_soon_threadsafe(self._on_error, f"pre-encoding {uri} failed: {exc}")
        finally:
            with self._lock:
                self._running -= job is not None
