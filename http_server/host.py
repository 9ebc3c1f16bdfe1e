"""The completer behind the HTTP routes: loaded in the background (the server answers
/health with 503 meanwhile), and run from a pool of request threads. The embedded model's
runtime is wrapped in a `StepBatcher` (engine/batching.py), so the model calls of the
requests in flight run batched, and each request thread has a completer of its own (its own
context cache) on that one runtime; any other completer runs one request at a time."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol

from engine.batching import StepBatcher
from engine.completer import Completer, CompletionRequest, CompletionResult
from engine.errors import DiffillError
from http_server.config import ServeConfig
from http_server.metrics import Metrics

State = Literal["loading", "ready", "failed"]


class NotReady(DiffillError):
    """The model is still loading, or failed to load (the reason is the message)."""


class Host(Protocol):
    """What the app needs of the completer's host: this process's (`ModelHost`), or Ray
    Serve replicas (http_server/ray_serve.py)."""

    state: State
    reason: str

    def start_loading(self) -> None: ...

    def describe(self) -> dict[str, object]: ...

    @property
    def model_name(self) -> str: ...

    async def complete(self, request: CompletionRequest) -> CompletionResult: ...

    def close(self) -> None: ...


class ModelHost:
    def __init__(self, config: ServeConfig, metrics: Metrics) -> None:
        self.config, self.metrics = config, metrics
        self.state: State = "loading"
        self.reason = "the model is loading"
        self.completer: Completer | None = None
        self.batcher: StepBatcher | None = None
        self._serial = threading.Lock()  # completers without a batcher: one request at a time
        self._local = threading.local()  # each request thread's own embedded completer
        self._pool = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="diffill-req")

    def start_loading(self) -> None:
        threading.Thread(target=self.load, name="diffill-load", daemon=True).start()

    def load(self) -> None:
        """Open the completer; `state` says how it went (`reason` why, when it failed)."""
        from engine.embedded import EmbeddedCompleter
        from engine.loading import open_completer

        c = self.config
        try:
            completer = open_completer(c.model, c.runtime, threads=c.threads)  # type: ignore[arg-type]
        except DiffillError as exc:
            self.state, self.reason = "failed", f"the model failed to load: {exc}"
            return
        if isinstance(completer, EmbeddedCompleter):
            batcher = StepBatcher(
                completer.runtime, c.max_batch, c.batch_wait_ms, self.metrics.batch
            )
            completer.runtime, self.batcher = batcher, batcher
        self.completer, self.state = completer, "ready"

    def describe(self) -> dict[str, object]:
        info = self.completer.describe() if self.completer else {}
        batch = self.batcher.max_batch if self.batcher else 1
        return {**info, "max_batch": batch}

    @property
    def model_name(self) -> str:
        return str(self.describe().get("name", "diffill"))

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        completer = self.completer
        if completer is None:
            raise NotReady(self.reason)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._complete, completer, request)

    def _complete(self, completer: Completer, request: CompletionRequest) -> CompletionResult:
        if self.batcher is None:
            with self._serial:
                return completer.complete(request)
        if not hasattr(self._local, "completer"):
            self._local.completer = completer.sibling()  # type: ignore[attr-defined]
        with self.batcher.session():
            return self._local.completer.complete(request)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self.batcher is not None:
            self.batcher.close()
