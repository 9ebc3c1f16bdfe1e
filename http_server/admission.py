"""Concurrency and queue limits: at most `running` requests inside the model, at most
`queued` more waiting for a place; a request beyond both is refused at once (429) instead of
waiting behind a queue it cannot get through in time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from engine.errors import DiffillError
from http_server.metrics import Metrics


class QueueFull(DiffillError):
    """Every place and every queue slot is taken."""


class Admission:
    def __init__(self, running: int, queued: int, metrics: Metrics) -> None:
        self.running, self.queued, self.metrics = running, queued, metrics
        self._places: asyncio.Semaphore | None = None  # made on the server's event loop

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        m = self.metrics
        if m.running + m.queued >= self.running + self.queued:
            raise QueueFull(f"{m.running} requests running and {m.queued} queued; retry shortly")
        if self._places is None:
            self._places = asyncio.Semaphore(self.running)
        m.queued += 1
        try:
            await self._places.acquire()
        finally:
            m.queued -= 1
        m.running += 1
        try:
            yield
        finally:
            m.running -= 1
            self._places.release()
