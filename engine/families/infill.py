"""Infilling the way these checkpoints were trained: `prefix + L masks + suffix`, natural order,
attention over everything (no FIM sentinels, no causal mask).

Three pieces:
- `fill`: a fixed-length gap, decoded block by block with threshold parallel unmasking and
  Fast-dLLM's DualCache. Each block starts with one full forward that caches every position's
  K/V; the block's later steps run only the block (plus, for shifted families, the token before
  it) against that cache. This is Fast-dLLM's *approximation*: prefix and suffix K/V are those
  of the block's first step, not refreshed as the block fills in. With `dual_cache=False` every
  step is a full forward (exact).
- `probe_length`: when the checkpoint cannot change the gap's length, try a few lengths and keep
  the one whose first full forward is most confident (CAL's observation); EOS trims the rest.
- `fill_dreamon`: DreamOn's expand/delete. A predicted `<|expand|>` becomes two masks, a
  predicted EOS deletes its position. The length changes every step, so every step is a full
  forward (as in DreamOn's own generator).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.errors import Cancelled
from engine.families.spec import FamilySpec
from engine.families.transformer import FamilyTransformer
from engine.families.unmask import choose, predict, step_quota

MEMO_SIZE = 4  # full forwards remembered: one per probed gap length, and one spare


@dataclass(frozen=True)
class DecodeSettings:
    threshold: float = 0.9
    score: str = "confidence"  # confidence | entropy | margin (see unmask.py)
    max_steps: int | None = None  # per block; None lets the threshold decide
    one_per_step: bool = False  # `ar` mode: leftmost position first, one token per step
    dual_cache: bool = True
    block_size: int = 32
    temperature: float = 0.0


@dataclass
class Decoded:
    ids: list[int]
    steps: int = 0
    full_ms: float = 0.0  # full forwards (the context is encoded here)
    window_ms: float = 0.0  # DualCache block-only forwards
    full_forwards: int = 0
    window_forwards: int = 0
    expansions: int = 0  # DreamOn: expand tokens turned into two masks
    reused_context: bool = False  # the probe's forwards were prepared before the request


class Infiller:
    """Runs a loaded family model on (prefix, gap, suffix) token sequences."""

    def __init__(self, model: FamilyTransformer, spec: FamilySpec, device: torch.device) -> None:
        self.model, self.spec, self.device = model, spec, device
        self._memo: OrderedDict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._memo_lock = threading.Lock()  # prepare() may run beside complete()
        self.memo_hits = 0

    @torch.inference_mode()
    def full_forward(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden (1, T, E) and K/V of a whole sequence, remembered for repeats (prepare())."""
        key = tuple(ids)
        with self._memo_lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                self.memo_hits += 1
                return self._memo[key]
        result = self.model(torch.tensor([ids], device=self.device))
        with self._memo_lock:
            self._memo[key] = result
            if len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return result

    def forget(self) -> None:
        """Drop remembered full forwards (benchmarks time them every run)."""
        with self._memo_lock:
            self._memo.clear()

    def gap_logits(
        self, hidden: torch.Tensor, offset: int, start: int, end: int, expand: bool = False
    ) -> torch.Tensor:
        """Logits (W, V) predicting positions start..end-1 from hidden states that begin at
        position `offset`. Shifted families read position p from the output at p-1 (and at 0,
        where there is no p-1, from itself, as Dream's generator does). The mask token is never
        a prediction; DreamOn's expand token only when `expand` allows it."""
        positions = torch.arange(start, end, device=hidden.device)
        if self.spec.shifted:
            positions = (positions - 1).clamp_min(0)
        logits = self.model.logits(hidden[0, positions - offset])  # (W, V)
        logits[:, self.spec.mask_id] = -torch.inf
        if self.spec.expand_id is not None and not expand:
            logits[:, self.spec.expand_id] = -torch.inf
        return logits

    @torch.inference_mode()
    def probe_length(self, prefix: list[int], suffix: list[int], lengths: list[int]) -> int:
        """The gap length whose all-masked first forward is most confident on average."""
        best, best_score = lengths[0], -1.0
        for length in lengths:
            ids = prefix + [self.spec.mask_id] * length + suffix
            hidden, _ = self.full_forward(ids)
            logits = self.gap_logits(hidden, 0, len(prefix), len(prefix) + length)
            score = torch.softmax(logits, dim=-1).amax(-1).mean().item()
            if score > best_score:
                best, best_score = length, score
        return best

    @torch.inference_mode()
    def fill(
        self,
        prefix: list[int],
        suffix: list[int],
        length: int,
        settings: DecodeSettings,
        is_cancelled: Callable[[], bool],
        generator: torch.Generator | None = None,
    ) -> Decoded:
        """Decode a gap of `length` tokens block by block; stop after a block holding EOS."""
        ids = prefix + [self.spec.mask_id] * length + suffix
        out = Decoded(ids=[])
        gap_end = len(prefix) + length
        for start in range(len(prefix), gap_end, settings.block_size):
            end = min(start + settings.block_size, gap_end)
            self._fill_block(ids, start, end, settings, out, is_cancelled, generator)
            if self.spec.eos_id in ids[start:end]:
                break
        out.ids = trim_at_eos(ids[len(prefix) : gap_end], self.spec)
        return out

    def _fill_block(
        self,
        ids: list[int],
        start: int,
        end: int,
        settings: DecodeSettings,
        out: Decoded,
        is_cancelled: Callable[[], bool],
        generator: torch.Generator | None,
    ) -> None:
        """Unmask ids[start:end] in place, step by step, with or without DualCache."""
        began = time.perf_counter()
        hidden, cache = self.full_forward(ids)
        out.full_ms += (time.perf_counter() - began) * 1000
        out.full_forwards += 1
        logits, steps = self.gap_logits(hidden, 0, start, end), 0
        while True:
            masked = [p for p in range(start, end) if ids[p] == self.spec.mask_id]
            chosen = self._unmask(ids, masked, logits[[p - start for p in masked]], settings,
                                  steps, generator)  # fmt: skip
            steps += 1
            if len(chosen) == len(masked) or self._ended(ids, start, end):
                break
            if is_cancelled():
                raise Cancelled("completion cancelled between denoising steps")
            logits = self._block_logits(
                ids, start, end, cache if settings.dual_cache else None, out
            )
        out.steps += steps

    def _ended(self, ids: list[int], start: int, end: int) -> bool:
        """An EOS with nothing masked before it: whatever follows is trimmed, so stop."""
        block = ids[start:end]
        if self.spec.eos_id not in block:
            return False
        return self.spec.mask_id not in block[: block.index(self.spec.eos_id)]

    def _block_logits(
        self, ids: list[int], start: int, end: int, cache: torch.Tensor | None, out: Decoded
    ) -> torch.Tensor:
        began = time.perf_counter()
        if cache is None:  # no cache: the exact, full-sequence forward
            hidden, _ = self.model(torch.tensor([ids], device=self.device))
            logits = self.gap_logits(hidden, 0, start, end)
            out.full_ms += (time.perf_counter() - began) * 1000
            out.full_forwards += 1
            return logits
        window = max(start - int(self.spec.shifted), 0)  # shifted: include the token before
        hidden, _ = self.model(torch.tensor([ids[window:end]], device=self.device), window, cache)
        logits = self.gap_logits(hidden, window, start, end)
        out.window_ms += (time.perf_counter() - began) * 1000
        out.window_forwards += 1
        return logits

    def _unmask(
        self,
        ids: list[int],
        masked: list[int],
        logits: torch.Tensor,
        settings: DecodeSettings,
        steps_done: int,
        generator: torch.Generator | None,
    ) -> list[int]:
        """Write this step's tokens into ids; returns the positions filled."""
        tokens, scores = predict(logits, settings.score, settings.temperature, generator)
        at_least = step_quota(len(masked), steps_done, settings.max_steps)
        picked = choose(scores, settings.threshold, at_least, settings.one_per_step).tolist()
        for i in picked:
            ids[masked[i]] = int(tokens[i])
        return [masked[i] for i in picked]

    @torch.inference_mode()
    def fill_dreamon(
        self,
        prefix: list[int],
        suffix: list[int],
        lengths: tuple[int, int],
        settings: DecodeSettings,
        is_cancelled: Callable[[], bool],
        generator: torch.Generator | None = None,
    ) -> Decoded:
        """DreamOn: start with lengths[0] masks, grow by expand and shrink by delete, never
        beyond lengths[1], and expand at most 2 * lengths[1] times (DreamOn's default budget,
        which stops expand/delete from cycling). Returns the gap once no mask is left."""
        gap, out = [self.spec.mask_id] * lengths[0], Decoded(ids=[])
        for _ in range(6 * lengths[1] + lengths[0]):  # DreamOn: 2 * max_len + 2 * budget
            masked = [i for i, t in enumerate(gap) if t == self.spec.mask_id]
            if not masked:
                break
            if out.steps and is_cancelled():
                raise Cancelled("completion cancelled between denoising steps")
            logits = self._dreamon_logits(prefix, gap, suffix, masked, lengths[1], out)
            picked = self._unmask(gap, masked, logits, settings, out.steps, generator)
            out.expansions += sum(gap[i] == self.spec.expand_id for i in picked)
            gap = apply_length_edits(gap, picked, self.spec, lengths[1])
            out.steps += 1
        out.ids = [t for t in gap if t != self.spec.mask_id]
        return out

    def _dreamon_logits(
        self,
        prefix: list[int],
        gap: list[int],
        suffix: list[int],
        masked: list[int],
        max_len: int,
        out: Decoded,
    ) -> torch.Tensor:
        began = time.perf_counter()
        hidden, _ = self.model(torch.tensor([prefix + gap + suffix], device=self.device))
        start, expand = len(prefix), len(gap) < max_len and out.expansions < 2 * max_len
        logits = self.gap_logits(hidden, 0, start, start + len(gap), expand)
        out.full_ms += (time.perf_counter() - began) * 1000
        out.full_forwards += 1
        return logits[masked]


def apply_length_edits(
    gap: list[int], filled: list[int], spec: FamilySpec, max_len: int
) -> list[int]:
    """DreamOn's edits on freshly filled positions: EOS deletes the position, expand becomes two
    masks (while the gap is shorter than max_len); everything else stays."""
    edited: list[int] = []
    for i, token in enumerate(gap):
        if i in filled and token == spec.eos_id:
            continue
        if i in filled and token == spec.expand_id:
            room = len(edited) + (len(gap) - i) < max_len
            edited.extend([spec.mask_id] * (2 if room else 1))
            continue
        edited.append(token)
    return edited


def trim_at_eos(gap: list[int], spec: FamilySpec) -> list[int]:
    """The gap up to its first EOS: the model marks where the middle ends."""
    return gap[: gap.index(spec.eos_id)] if spec.eos_id in gap else gap
