"""Step-level batching for a server with many requests in flight.

Every model call of every request goes to one model thread. It runs the denoising steps that
are waiting as one batched call, each canvas against its own context cache
(`own_caches` in engine/inference.py, the runtime's `denoise_batch`), and the short context
encodes that are waiting (the finished blocks appended to each request's context) as another
(`encode_batch`: chunks right-padded to the longest, caches padded and masked). Long encodes
(a request's context, in chunks of up to 256 tokens) run one by one: on a 2-core CPU eight of
them batched took 1.83x as long as one after another, while eight 16-token appends batched
took 0.40x and eight denoising steps 0.64x (`diffill bench serve`, BENCHMARKS.md).

Requests keep running the unchanged sampler (engine/sampler.py) in their own threads: the
runtime they are given is the batcher, which hands each call to the model thread and waits.
The model thread starts once every request in flight (`session()`) is waiting on it, or
`max_wait_ms` after the first call arrived, so a request busy tokenizing stalls the others
for at most that long. One model thread also keeps the runtime's threads from being
oversubscribed by many requests at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from engine.errors import DiffillError

BATCHED_ENCODE_TOKENS = 32  # encodes of at most this many tokens are batched; longer run alone


@dataclass(eq=False)
class _Call:
    kind: Literal["encode", "denoise"]
    first: np.ndarray  # ids (1, T) or canvas (N, C)
    kv: np.ndarray  # (L, 2, 1, H, P, D)
    done: threading.Event = field(default_factory=threading.Event)
    result: np.ndarray | None = None
    error: BaseException | None = None


class StepBatcher:
    """A `Runtime` (engine/sampler.py) that many threads share; see the module docstring."""

    def __init__(
        self,
        runtime: Any,
        max_batch: int = 8,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[str, int], None] = lambda kind, rows: None,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch {max_batch} must be >= 1, max_wait_ms {max_wait_ms} >= 0")
        self.runtime = runtime
        self.name = runtime.name
        # A runtime without the batched graph runs one request's canvas per call.
        self.max_batch = max_batch if getattr(runtime, "batches", False) else 1
        self.max_wait_s = max_wait_ms / 1000
        self.on_batch = on_batch  # ("encode" or "denoise", rows) of each model call, for metrics
        self._cond = threading.Condition()
        self._pending: list[_Call] = []
        self._active = 0
        self._closed = False
        self._stacked: dict[str, tuple[tuple[np.ndarray, ...], np.ndarray]] = {}
        self._thread = threading.Thread(target=self._loop, name="diffill-model", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Around one request: the model thread waits for the requests in flight."""
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def encode(self, ids: np.ndarray, past: np.ndarray) -> np.ndarray:
        return self._call(_Call("encode", ids, past))

    def denoise(self, canvas: np.ndarray, kv: np.ndarray) -> np.ndarray:
        return self._call(_Call("denoise", canvas, kv))

    def close(self) -> None:
        """Finish the calls already waiting, then stop the model thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _call(self, call: _Call) -> np.ndarray:
        with self._cond:
            if self._closed:
                raise DiffillError("the model thread has stopped")
            self._pending.append(call)
            self._cond.notify_all()
        call.done.wait()
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def _loop(self) -> None:
        while (calls := self._take()) is not None:
            for run, group in self._plan(calls):
                self._finish(group, lambda g=group, r=run: r(g))

    def _plan(self, calls: list[_Call]) -> Iterator[tuple[Callable, list[_Call]]]:
        """Long encodes alone, then the short ones in groups, then the denoising steps."""
        encodes = [c for c in calls if c.kind == "encode"]
        long = [c for c in encodes if c.first.shape[1] > BATCHED_ENCODE_TOKENS]
        short = [c for c in encodes if c.first.shape[1] <= BATCHED_ENCODE_TOKENS]
        yield from ((self._encode, [call]) for call in long)
        yield from ((self._encode, group) for group in self._groups(short))
        denoises = [c for c in calls if c.kind == "denoise"]
        yield from ((self._denoise, group) for group in self._groups(denoises))

    def _take(self) -> list[_Call] | None:
        """The calls to run next, once every session waits or the oldest waited max_wait."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            deadline = time.monotonic() + self.max_wait_s
            while len(self._pending) < self._active and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            calls, self._pending = self._pending, []
            return calls

    def _groups(self, calls: list[_Call]) -> Iterator[list[_Call]]:
        """Consecutive calls with at most max_batch canvas rows together (a call with more
        rows than that goes alone)."""
        group: list[_Call] = []
        for call in calls:
            if group and sum(len(c.first) for c in group) + len(call.first) > self.max_batch:
                yield group
                group = []
            group.append(call)
        if group:
            yield group

    def _encode(self, group: list[_Call]) -> list[np.ndarray]:
        """Each call's cache with its chunk's K/V appended, (L, 2, 1, H, P+T, D)."""
        self.on_batch("encode", len(group))
        if len(group) == 1:
            return [self.runtime.encode(group[0].first, group[0].kv)]
        sizes = [c.first.shape[1] for c in group]
        ids = np.zeros((len(group), max(sizes)), dtype=np.int64)  # (N, T), right-padded
        for row, (call, size) in enumerate(zip(group, sizes, strict=True)):
            ids[row, :size] = call.first[0]
        lengths = np.array([c.kv.shape[4] for c in group])  # (N,)
        new = self.runtime.encode_batch(ids, lengths, self._stack("encode", group, [1] * len(ids)))
        return [
            np.concatenate((c.kv, new[:, :, row : row + 1, :, :size]), axis=4)
            for row, (c, size) in enumerate(zip(group, sizes, strict=True))
        ]

    def _denoise(self, group: list[_Call]) -> list[np.ndarray]:
        rows = [len(c.first) for c in group]
        self.on_batch("denoise", sum(rows))
        if len(group) == 1:
            return [self.runtime.denoise(group[0].first, group[0].kv)]
        lengths = np.repeat([c.kv.shape[4] for c in group], rows)  # (N,)
        canvas = np.concatenate([c.first for c in group])  # (N, C)
        logits = self.runtime.denoise_batch(canvas, lengths, self._stack("denoise", group, rows))
        return np.split(logits, np.cumsum(rows)[:-1])

    def _stack(self, kind: str, group: list[_Call], rows: list[int]) -> np.ndarray:
        """The group's caches padded to the longest, one row per canvas row: (L, 2, N, H, P,
        D). Kept while the group's caches stay the same (the steps of one block), since the
        copy costs about as much as a step."""
        caches = tuple(c.kv for c in group)
        kept = self._stacked.get(kind)
        if kept is not None and _same(kept[0], caches) and kept[1].shape[2] == sum(rows):
            return kept[1]
        first = caches[0]
        longest = max(kv.shape[4] for kv in caches)
        shape = (*first.shape[:2], sum(rows), first.shape[3], longest, first.shape[5])
        stacked = np.zeros(shape, dtype=first.dtype)
        row = 0
        for kv, n in zip(caches, rows, strict=True):
            stacked[:, :, row : row + n, :, : kv.shape[4]] = kv
            row += n
        self._stacked[kind] = (caches, stacked)  # holding the caches keeps their ids unique
        return stacked

    @staticmethod
    def _finish(group: list[_Call], work: Callable[[], list[np.ndarray]]) -> None:
        try:
            for call, result in zip(group, work(), strict=True):
                call.result = result
        except Exception as exc:  # handed to the waiting request, raised in its thread
            for call in group:
                call.error = exc
        for call in group:
            call.done.set()


def _same(old: tuple[np.ndarray, ...], new: tuple[np.ndarray, ...]) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))
