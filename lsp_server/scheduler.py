"""Where engine calls run: one model thread, latest request wins per document.

Every engine call goes to a single worker thread, so the event loop never blocks and the
engine's context cache sees calls in order. A completion carries a cancel flag that the
engine polls between denoising steps; the flag is set when the client cancels the request
(`$/cancelRequest` cancels the handler's task) or when a newer request for the same
document arrives.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from engine.errors import Cancelled

T = TypeVar("T")
IsCancelled = Callable[[], bool]


class ModelWorker:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffill-model")
        self._latest: dict[str, threading.Event] = {}
        self.in_flight = 0
        self.stopped = 0  # engine runs skipped or ended early on their cancel flag

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run fn(*args) on the model thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def submit(self, fn: Callable[[], object]) -> None:
        """Queue fn on the model thread without waiting for it."""
        self._executor.submit(fn)

    async def run_latest(self, key: str, fn: Callable[[IsCancelled], T]) -> T:
        """Run fn(is_cancelled) on the model thread, cancelling the previous call for `key`."""
        flag = threading.Event()
        if (previous := self._latest.get(key)) is not None:
            previous.set()
        self._latest[key] = flag
        self.in_flight += 1
        try:
            return await self.run(self._unless_cancelled, fn, flag)
        except asyncio.CancelledError:
            flag.set()
            raise
        finally:
            self.in_flight -= 1
            if self._latest.get(key) is flag:
                del self._latest[key]

    def close(self) -> None:
        for flag in self._latest.values():
            flag.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _unless_cancelled(self, fn: Callable[[IsCancelled], T], flag: threading.Event) -> T:
        """fn's result; a cancel leaves as a fresh `Cancelled`, without fn's frames.

        A cancel is control flow, and a third of a typist's requests end in one. The raised
        exception's traceback would keep the engine's frames alive (the request's K/V copy,
        canvases and logits, megabytes each) for as long as the exception lives: until the
        answer is sent, when `DiffillProtocol` drops the tracebacks, or, for any other holder,
        until the collector finds the cycle. Before either fix RSS swung by up to 70 MB."""
        try:
            if flag.is_set():
                raise Cancelled("cancelled before the model thread reached it")
            return fn(flag.is_set)
        except Cancelled as exc:
            self.stopped += 1
            reason = str(exc)
        raise Cancelled(reason)


class NetworkCalls:
    """Online backends' requests, awaited on the event loop, latest request wins per key.

    Nothing blocks, so no thread is needed; what matters is that a request nobody waits for
    stops costing the backend. Cancelling its task closes the HTTP connection, and llama.cpp,
    vLLM and Ollama stop generating when their client goes away.
    """

    def __init__(self) -> None:
        self._latest: dict[str, asyncio.Task] = {}
        self.in_flight = 0
        self.stopped = 0  # requests aborted by a cancel or a newer request

    async def run_latest(self, key: str, call: Coroutine[object, object, T]) -> T:
        """Await `call`, cancelling the previous call for `key`; a superseded call raises
        Cancelled, a cancelled caller cancels the call."""
        if (previous := self._latest.get(key)) is not None:
            previous.cancel()
        task = asyncio.ensure_future(call)
        self._latest[key] = task
        self.in_flight += 1
        try:
            return await task
        except asyncio.CancelledError:
            self.stopped += 1
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller itself was cancelled ($/cancelRequest)
            raise Cancelled("superseded by a newer request") from None
        finally:
            self.in_flight -= 1
            if self._latest.get(key) is task:
                del self._latest[key]
