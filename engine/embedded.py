"""The embedded diffusion model as a `Completer`: tokenize, lay out the SPM context, reuse
the cached context K/V, and let the sampler fill the gap.

Typing at the cursor only appends to the prefix and the suffix comes first, so consecutive
requests share a long token prefix: its K/V is kept and only the rest is encoded. `prepare`
does that encoding ahead of time from the server's worker thread, hence the lock.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import numpy as np

from engine.checkpoint import parameter_count
from engine.completer import (
    Candidate,
    CompletionRequest,
    CompletionResult,
    Length,
    Mode,
    Timings,
    never_cancelled,
)
from engine.config import ModelConfig
from engine.errors import Cancelled, InputError
from engine.sampler import Runtime, SamplerSettings, generate
from engine.tokens import MIDDLE_ID, PREFIX_ID, SUFFIX_ID

MAX_CANDIDATES = 64  # the denoise graph's largest batch
CHARS_PER_TOKEN_BOUND = 16  # code averages ~3.4 chars a token: a window this wide never runs short
ENCODE_CHUNK = 256  # context tokens per encode call: caps the attention buffers' peak memory
SUFFIX_SHARE = 4  # the suffix keeps at least 1/SUFFIX_SHARE of the budget when both are long
FLOAT_BYTES = 4
RECENT_TEXTS = 4  # tokenized texts kept: a context's two sides, and the one before it


class EmbeddedCompleter:
    def __init__(
        self,
        runtime: Runtime,
        tokenizer,
        config: ModelConfig,
        folder: Path | None = None,
        max_context_tokens: int | None = None,
        memory_budget_bytes: int | None = None,
    ) -> None:
        self.runtime, self.tokenizer, self.config, self.folder = runtime, tokenizer, config, folder
        self.max_context_tokens = max_context_tokens or config.max_positions
        self.memory_budget_bytes = memory_budget_bytes or default_memory_budget()
        self.parameters = parameter_count(folder) if folder else None  # read once: the files
        # may change under a running server (a new model landing), this completer does not
        self._lock = threading.Lock()
        self._ids: list[int] = []
        shape = (config.n_layers, 2, 1, config.n_heads, 0, config.head_dim)
        self._kv = np.zeros(shape, dtype=np.float32)  # (L, 2, 1, H, P, D), P = len(self._ids)
        self._recent: OrderedDict[str, list[int]] = OrderedDict()  # text -> its token ids

    def complete(
        self, request: CompletionRequest, is_cancelled: Callable[[], bool] = never_cancelled
    ) -> CompletionResult:
        start = time.perf_counter()
        validate(request)
        ids = self.context_ids(request.prefix, request.suffix, request.max_tokens)
        self.check_memory(len(ids), request.num_candidates, request.max_tokens)
        if is_cancelled():
            raise Cancelled("completion cancelled before encoding the context")
        kv, reused, encode_ms = self._encode(ids)
        gens, stats = generate(
            self.runtime, kv, self._settings(request), request.num_candidates, is_cancelled
        )
        candidates: dict[str, Candidate] = {}
        for gen in gens:
            text = self.tokenizer.decode(gen.tokens, skip_special_tokens=True)
            candidates.setdefault(text, Candidate(text, len(gen.tokens), gen.steps))
        timings = Timings(
            total_ms=(time.perf_counter() - start) * 1000,
            encode_ms=encode_ms + stats.encode_ms,
            denoise_ms=stats.denoise_ms,
            context_tokens=len(ids),
            reused_tokens=reused,
            out_of_time=stats.out_of_time,
        )
        return CompletionResult(tuple(candidates.values()), timings, {"runtime": self.runtime.name})

    def sibling(self) -> EmbeddedCompleter:
        """A completer on the same runtime, tokenizer and config with a context cache of its
        own: a server gives one to each request thread, so concurrent requests neither queue
        on one cache's lock nor evict each other's contexts."""
        twin = EmbeddedCompleter(
            self.runtime, self.tokenizer, self.config, self.folder, self.max_context_tokens
        )
        twin.__dict__["line_break_ids"] = self.line_break_ids  # a pass over the vocabulary, once
        return twin

    def prepare(self, prefix: str, suffix: str) -> None:
        if prefix or suffix:
            ids = self.context_ids(prefix, suffix, CompletionRequest.max_tokens)
            self.check_memory(len(ids), 1, CompletionRequest.max_tokens)
            self._encode(ids)

    def check_memory(self, context_tokens: int, candidates: int, max_tokens: int) -> None:
        """Refuse a request whose arrays would not fit the memory budget, before allocating
        them: an allocation failure halfway through a run is a MemoryError, or the OOM killer."""
        need = memory_needed(self.config, context_tokens, candidates, max_tokens)
        if need > self.memory_budget_bytes:
            raise InputError(
                f"a context of {context_tokens} tokens with {candidates} candidates needs about "
                f"{need / 1e6:.1f} MB, over the memory budget of "
                f"{self.memory_budget_bytes / 1e6:.1f} MB (setting model.memoryBudgetMb); "
                "lower context.budgetTokens or alternatives"
            )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def describe(self) -> dict[str, object]:
        info: dict[str, object] = {
            "name": self.folder.name if self.folder else "diffill",
            "model": str(self.folder) if self.folder else None,
            "runtime": self.runtime.name,
            "canvas_size": self.config.canvas_size,
            "context_tokens": self.max_context_tokens,
            "vocab_size": self.config.vocab_size,
        }
        if self.parameters is not None:
            info["parameters"] = self.parameters
        if hasattr(self.runtime, "providers"):
            info["providers"] = list(self.runtime.providers)
        return info

    def context_ids(self, prefix: str, suffix: str, max_tokens: int) -> list[int]:
        """`<fim_suffix> suffix <fim_prefix> prefix <fim_middle>`, each side tokenized on its
        own and cut to the budget: the prefix keeps its end, the suffix its start."""
        budget = self.context_budget(max_tokens)
        window = budget * CHARS_PER_TOKEN_BOUND
        prefix_ids = self._tokens(prefix[-window:] if len(prefix) > window else prefix)
        suffix_ids = self._tokens(suffix[:window])
        suffix_keep = min(len(suffix_ids), max(budget // SUFFIX_SHARE, budget - len(prefix_ids)))
        prefix_keep = min(len(prefix_ids), budget - suffix_keep)
        prefix_ids = prefix_ids[len(prefix_ids) - prefix_keep :]
        return [SUFFIX_ID, *suffix_ids[:suffix_keep], PREFIX_ID, *prefix_ids, MIDDLE_ID]

    def context_budget(self, max_tokens: int) -> int:
        """Context tokens that fit with room for the canvas blocks `max_tokens` needs."""
        c = self.config.canvas_size
        reserve = math.ceil(max_tokens / c) * c
        budget = min(self.max_context_tokens, self.config.max_positions - reserve) - 3
        if budget < c:
            raise InputError(
                f"max_tokens {max_tokens} leaves no room for context in "
                f"{self.config.max_positions} positions"
            )
        return budget

    def _tokens(self, text: str) -> list[int]:
        """Token ids of one side of a context. A request usually comes for the context that
        `prepare` tokenized a moment before (a few ms for an editor's window), so the last
        few are kept."""
        with self._lock:
            ids = self._recent.get(text)
            if ids is not None:
                self._recent.move_to_end(text)
                return ids
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        with self._lock:
            self._recent[text] = ids
            if len(self._recent) > RECENT_TEXTS:
                self._recent.popitem(last=False)
        return ids

    def _encode(self, ids: list[int]) -> tuple[np.ndarray, int, float]:
        """K/V for `ids`, reusing the longest common prefix with the last context."""
        start = time.perf_counter()
        with self._lock:
            reused = common_prefix_length(self._ids, ids)
            kv = self._kv
            if reused < len(self._ids):  # one copy here, not a strided cache in every step
                kv = np.ascontiguousarray(self._kv[:, :, :, :, :reused])
            for begin in range(reused, len(ids), ENCODE_CHUNK):
                chunk = np.asarray([ids[begin : begin + ENCODE_CHUNK]], dtype=np.int64)
                kv = self.runtime.encode(chunk, kv)
            self._ids, self._kv = ids, kv
        return kv, reused, (time.perf_counter() - start) * 1000

    @functools.cached_property
    def line_break_ids(self) -> frozenset[int]:
        """Tokens whose text holds a line break: where a single-line completion ends."""
        vocab = range(self.tokenizer.get_vocab_size())
        return frozenset(i for i in vocab if "\n" in self.tokenizer.decode([i]))

    def _settings(self, request: CompletionRequest) -> SamplerSettings:
        return SamplerSettings(
            canvas_size=self.config.canvas_size,
            mode=request.mode,
            max_tokens=request.max_tokens,
            max_steps=request.max_steps,
            threshold=request.threshold,
            temperature=request.temperature,
            seed=request.seed,
            stop_ids=self.line_break_ids if request.stop_at_newline else frozenset(),
            length=request.length,
            max_predict_ms=request.max_predict_ms,
        )


def common_prefix_length(old: list[int], new: list[int]) -> int:
    """Length of the shared start of two id lists (numpy: contexts run to thousands)."""
    n = min(len(old), len(new))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(old[:n]) != np.asarray(new[:n]))
    return int(differ[0]) if differ.size else n


def memory_needed(
    config: ModelConfig, context_tokens: int, candidates: int, max_tokens: int
) -> int:
    """Bytes of a request's largest arrays: the context K/V and each candidate's copy of it
    with its canvas blocks appended, and the canvas logits."""
    kv_per_position = config.n_layers * 2 * config.n_heads * config.head_dim * FLOAT_BYTES
    canvas = config.canvas_size
    positions = context_tokens + math.ceil(max_tokens / canvas) * canvas
    logits = candidates * canvas * config.vocab_size * FLOAT_BYTES
    return kv_per_position * positions * (1 + candidates) + logits


def default_memory_budget() -> int:
    """Half the memory free when the model loads (all of it is not ours to take)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):  # no such figure on this system: no practical limit
        return 1 << 62


def validate(request: CompletionRequest) -> None:
    """InputError naming the first unusable field of a request."""
    problems = [
        (not request.prefix and not request.suffix, "prefix and suffix are both empty"),
        (request.max_tokens < 1, f"max_tokens must be at least 1, got {request.max_tokens}"),
        (request.mode not in get_args(Mode), f"unknown mode {request.mode!r}"),
        (request.length not in get_args(Length), f"unknown length {request.length!r}"),
        (not 0.0 <= request.threshold <= 1.0, f"threshold {request.threshold} is not in 0..1"),
        (request.max_steps is not None and request.max_steps < 1, "max_steps must be >= 1"),
        (request.temperature < 0, f"temperature {request.temperature} is negative"),
        (request.max_predict_ms < 0, f"max_predict_ms {request.max_predict_ms} is negative"),
        (
            not 1 <= request.num_candidates <= MAX_CANDIDATES,
            f"num_candidates must be 1..{MAX_CANDIDATES}, got {request.num_candidates}",
        ),
    ]
    for failed, message in problems:
        if failed:
            raise InputError(message)
