"""Turn canvas logits into tokens: `diffusion` (many tokens per step) or `ar` (one per step).

Numpy only, so it runs on the torch-free serving path. It drives any `Runtime`: a canvas of
C masked positions is denoised against the cached context; a finished block without <eom>
is encoded onto the cache and a fresh masked block follows. Letters: N candidates (batch),
C canvas length, V vocabulary, L layers, H heads, P cached length, D head dim.

Gap length. Nobody says how long a completion should be. Training pads every middle with
<eom> to whole blocks, so on a fully masked canvas P(<eom> at i) estimates P(gap ends by i).
`blocks` lets decoding discover the end (an <eom> closes the block, else the next block
follows); `predicted` also reads that estimate off the first pass of each block and commits
the end there at once, so the step budget goes to the positions that hold text. `full` never
ends the gap early: <eom> is never chosen, so every request decodes `max_tokens` tokens, in
either mode (what a speed comparison of diffusion and `ar` at equal length needs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.completer import Length, Mode, never_cancelled
from engine.errors import Cancelled
from engine.tokens import EOM_ID, MASK_ID

ALTERNATIVE_TEMPERATURE = 0.8  # candidates beyond the first sample even when the first is greedy
PREDICTED_END_PROBABILITY = 0.5  # `predicted`: the first position where <eom> is at least as
# likely as not is the gap's end (the median of the length distribution)


class Runtime(Protocol):
    """The two model calls the sampler needs, numpy in and out."""

    name: str

    def encode(self, ids: np.ndarray, past: np.ndarray) -> np.ndarray:
        """ids (1, T) int64 and past (L, 2, 1, H, P, D) float32 -> kv (L, 2, 1, H, P+T, D)."""
        ...

    def denoise(self, canvas: np.ndarray, kv: np.ndarray) -> np.ndarray:
        """canvas (N, C) int64 against kv (L, 2, 1, H, P, D) -> logits (N, C, V) float32."""
        ...


@dataclass(frozen=True)
class SamplerSettings:
    canvas_size: int
    mode: Mode = "diffusion"
    max_tokens: int = 64
    max_steps: int | None = None  # per block; None means one per canvas position
    threshold: float = 0.9
    temperature: float = 0.0
    seed: int = 0
    stop_ids: frozenset[int] = frozenset()  # tokens that end the gap like <eom> but are kept
    length: Length = "blocks"
    max_predict_ms: float = 0.0  # 0: no limit; else denoising stops this long after its start

    def steps_per_block(self) -> int:
        return max(1, self.max_steps or self.canvas_size)


@dataclass
class Generation:
    """One candidate's tokens so far (<eom> excluded) and the canvas steps it took."""

    tokens: list[int] = field(default_factory=list)
    steps: int = 0
    finished: bool = False  # an <eom> closed it
    last_block: list[int] = field(default_factory=list)


@dataclass
class SamplerStats:
    encode_ms: float = 0.0  # finished blocks appended to the context
    denoise_ms: float = 0.0
    out_of_time: bool = False  # max_predict_ms passed before the gap was decided


def generate(
    runtime: Runtime,
    kv: np.ndarray,
    settings: SamplerSettings,
    num_candidates: int = 1,
    is_cancelled: Callable[[], bool] = never_cancelled,
) -> tuple[list[Generation], SamplerStats]:
    """Fill the gap after the cached context; candidates share the first block's batch."""
    temperatures = [settings.temperature] + [settings.temperature or ALTERNATIVE_TEMPERATURE] * (
        num_candidates - 1
    )
    rngs = [np.random.default_rng([settings.seed, i]) for i in range(num_candidates)]
    gens = [Generation() for _ in range(num_candidates)]
    stats = SamplerStats()
    block = _BlockDecoder(runtime, settings, stats, is_cancelled)
    block.run(kv, gens, rngs, temperatures)
    for gen, rng, temperature in zip(gens, rngs, temperatures, strict=True):
        row_kv = kv
        while not gen.finished and len(gen.tokens) < settings.max_tokens:
            if block.out_of_time():
                break
            row_kv = block.append(row_kv, gen.last_block)
            block.run(row_kv, [gen], [rng], [temperature])
    return gens, stats


class _BlockDecoder:
    """Denoises one canvas block for a batch of candidates that share a context cache."""

    def __init__(
        self,
        runtime: Runtime,
        settings: SamplerSettings,
        stats: SamplerStats,
        is_cancelled: Callable[[], bool],
    ) -> None:
        self.runtime, self.settings, self.stats = runtime, settings, stats
        self.is_cancelled = is_cancelled
        self.stop_ids = np.fromiter(settings.stop_ids, dtype=np.int64)
        self.started: float | None = None  # the first denoising step's start

    def append(self, kv: np.ndarray, tokens: list[int]) -> np.ndarray:
        """Encode a finished block onto the cache so the next block sees it as context."""
        self._check_cancelled()
        start = time.perf_counter()
        kv = self.runtime.encode(np.asarray([tokens], dtype=np.int64), kv)
        self.stats.encode_ms += (time.perf_counter() - start) * 1000
        return kv

    def run(
        self,
        kv: np.ndarray,
        gens: list[Generation],
        rngs: list[np.random.Generator],
        temperatures: list[float],
    ) -> None:
        c = self.settings.canvas_size
        canvas = np.full((len(gens), c), MASK_ID, dtype=np.int64)  # (N, C)
        open_ = np.zeros((len(gens), c), dtype=bool)  # positions still to decode
        for row, gen in enumerate(gens):
            open_[row, : min(c, self.settings.max_tokens - len(gen.tokens))] = True
        step, budget = 0, self.settings.steps_per_block()
        while open_.any():
            logits = self._denoise(canvas, kv)  # (N, C, V)
            tokens, confidence = predict(logits, temperatures, rngs, self._may_end())
            if step == 0 and self._predicts_length():
                close_predicted_end(canvas, open_, eom_probability(logits))
            chosen = self._choose(open_, confidence, budget - step)
            canvas[chosen] = tokens[chosen]
            for row, gen in enumerate(gens):
                gen.steps += bool(open_[row].any())
            open_ &= ~chosen
            close_after_end(canvas, open_, self.stop_ids)
            step += 1
            if open_.any() and self.out_of_time():
                _close_from_first(canvas, open_, open_.copy(), after=0)  # keep what is committed
        for row, gen in enumerate(gens):
            _record(gen, canvas[row], self.settings)

    def _denoise(self, canvas: np.ndarray, kv: np.ndarray) -> np.ndarray:
        self._check_cancelled()
        start = time.perf_counter()
        self.started = self.started or start
        logits = self.runtime.denoise(canvas, kv)
        self.stats.denoise_ms += (time.perf_counter() - start) * 1000
        return logits

    def out_of_time(self) -> bool:
        """Whether the settings' time limit has passed since the first denoising step."""
        limit, started = self.settings.max_predict_ms, self.started
        if limit and started and (time.perf_counter() - started) * 1000 > limit:
            self.stats.out_of_time = True
        return self.stats.out_of_time

    def _check_cancelled(self) -> None:
        if self.is_cancelled():
            raise Cancelled("completion cancelled between denoising steps")

    def _may_end(self) -> bool:
        return self.settings.length != "full"

    def _predicts_length(self) -> bool:
        return self.settings.length == "predicted" and self.settings.mode == "diffusion"

    def _choose(self, open_: np.ndarray, confidence: np.ndarray, steps_left: int) -> np.ndarray:
        if self.settings.mode == "ar":
            return choose_leftmost(open_)
        return choose_confident(open_, confidence, self.settings.threshold, max(1, steps_left))


def predict(
    logits: np.ndarray,
    temperatures: list[float],
    rngs: list[np.random.Generator],
    may_end: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Token (N, C) and its probability (N, C) per position; special tokens other than <eom>
    (and <eom> too unless `may_end`) are never chosen. Greedy rows take the argmax; others
    sample by the Gumbel-max trick."""
    logits[..., : EOM_ID + (not may_end)] = -np.inf  # <fim_*> and <mask> are never text
    tokens = np.empty(logits.shape[:2], dtype=np.int64)
    confidence = np.empty(logits.shape[:2], dtype=np.float32)
    for row, (temperature, rng) in enumerate(zip(temperatures, rngs, strict=True)):
        scaled = logits[row] / temperature if temperature > 0 else logits[row]  # (C, V)
        scaled = scaled - scaled.max(axis=-1, keepdims=True)
        weights = np.exp(scaled)
        if temperature > 0:
            scaled = scaled + rng.gumbel(size=scaled.shape).astype(np.float32)
        tokens[row] = scaled.argmax(axis=-1)
        chosen = np.take_along_axis(weights, tokens[row][:, None], axis=-1)[:, 0]
        confidence[row] = chosen / weights.sum(axis=-1)
    return tokens, confidence


def eom_probability(logits: np.ndarray) -> np.ndarray:
    """P(<eom>) (N, C) at each canvas position, from logits (N, C, V)."""
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights[..., EOM_ID] / weights.sum(axis=-1)


def close_predicted_end(canvas: np.ndarray, open_: np.ndarray, p_eom: np.ndarray) -> None:
    """`predicted` length: from the first open position where <eom> is at least as likely as
    not, the canvas is <eom> and closed, before any text token is committed there."""
    _close_from_first(canvas, open_, open_ & (p_eom >= PREDICTED_END_PROBABILITY), after=0)


def choose_leftmost(open_: np.ndarray) -> np.ndarray:
    """ar: the first open position of each row."""
    chosen = np.zeros_like(open_)
    rows = np.flatnonzero(open_.any(axis=1))
    chosen[rows, open_[rows].argmax(axis=1)] = True
    return chosen


def choose_confident(
    open_: np.ndarray, confidence: np.ndarray, threshold: float, steps_left: int
) -> np.ndarray:
    """diffusion: every open position at least `threshold` confident, at least enough of the
    most confident ones to finish the block within `steps_left` steps, and always the leftmost
    open one. That frontier is decided as `ar` would decide it; without it, confident <eom>
    padding committed at the tail first pulls the first positions to <eom> too, and the gap
    closes before any text (`diffill eval`: 45% empty answers against 5% with it)."""
    chosen = open_ & (confidence >= threshold) | choose_leftmost(open_)
    for row in np.flatnonzero(open_.any(axis=1)):
        missing = math.ceil(int(open_[row].sum()) / steps_left) - int(chosen[row].sum())
        if missing > 0:
            ranked = np.where(open_[row] & ~chosen[row], confidence[row], -np.inf)
            chosen[row, np.argsort(-ranked, kind="stable")[:missing]] = True
    return chosen


def close_after_end(canvas: np.ndarray, open_: np.ndarray, stop_ids: np.ndarray) -> None:
    """Positions after a decoded <eom> or stop token (a line break, for single-line requests)
    are past the gap: fill them with <eom> and stop decoding them."""
    ends = (canvas == EOM_ID) | np.isin(canvas, stop_ids)  # (N, C)
    _close_from_first(canvas, open_, ends, after=1)


def _close_from_first(canvas: np.ndarray, open_: np.ndarray, ends: np.ndarray, after: int) -> None:
    """In each row with an end, every position from `after` past its first one is <eom>
    and closed."""
    for row in np.flatnonzero(ends.any(axis=1)):
        first = int(np.argmax(ends[row])) + after
        canvas[row, first:] = EOM_ID
        open_[row, first:] = False


def _record(gen: Generation, canvas_row: np.ndarray, settings: SamplerSettings) -> None:
    limit = min(len(canvas_row), settings.max_tokens - len(gen.tokens))
    block = [int(t) for t in canvas_row[:limit]]
    if EOM_ID in block:
        block = block[: block.index(EOM_ID)]
        gen.finished = True
    gen.finished = gen.finished or not settings.stop_ids.isdisjoint(block)
    gen.tokens.extend(block)
    gen.last_block = block
