"""The `Completer` for open-weight diffusion checkpoints: the language server drives a Dream,
DreamOn, LLaDA or Open-dCoder folder exactly as it drives diffill's own model."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import torch

from engine.completer import (
    Candidate,
    CompletionRequest,
    CompletionResult,
    Timings,
    never_cancelled,
)
from engine.errors import InputError
from engine.families.infill import Decoded, DecodeSettings, Infiller
from engine.families.loading import LoadedFamily

PROBE_LENGTHS = (8, 16, 32)  # gap lengths tried when the checkpoint cannot expand/delete
DREAMON_START = 4  # DreamOn's default min_gen_len
ALTERNATIVE_TEMPERATURE = 0.7  # candidates beyond the first always sample
CONTEXT_BUDGET = 2048  # tokens of prefix + suffix (Dream's documented context is 2048)


class FamilyCompleter:
    """prefix + gap + suffix in natural order; DreamOn sizes the gap itself, other checkpoints
    get the most confident of a few gap lengths, trimmed at their first EOS."""

    def __init__(self, loaded: LoadedFamily, settings: DecodeSettings | None = None) -> None:
        self.loaded, self.spec = loaded, loaded.spec
        self.settings = settings or DecodeSettings()
        self.infiller = Infiller(loaded.model, loaded.spec, loaded.device)

    def complete(
        self, request: CompletionRequest, is_cancelled: Callable[[], bool] = never_cancelled
    ) -> CompletionResult:
        began = time.perf_counter()
        if request.max_tokens <= 0:
            raise InputError(f"max_tokens must be positive, got {request.max_tokens}")
        prefix, suffix = self._context(request.prefix, request.suffix, request.max_tokens)
        runs = [
            self._candidate(prefix, suffix, request, index, is_cancelled)
            for index in range(max(1, request.num_candidates))
        ]
        candidates = tuple(
            Candidate(self.loaded.tokenizer.decode(run.ids), len(run.ids), run.steps)
            for run in runs
        )
        timings = Timings(
            total_ms=(time.perf_counter() - began) * 1000,
            encode_ms=sum(run.full_ms for run in runs),
            denoise_ms=sum(run.window_ms for run in runs),
            context_tokens=len(prefix) + len(suffix),
            reused_tokens=len(prefix) + len(suffix) if runs[0].reused_context else 0,
        )
        return CompletionResult(candidates, timings, {"length": len(runs[0].ids)})

    def _candidate(
        self,
        prefix: list[int],
        suffix: list[int],
        request: CompletionRequest,
        index: int,
        is_cancelled: Callable[[], bool],
    ) -> Decoded:
        generator = torch.Generator(device=self.loaded.device).manual_seed(request.seed + index)
        temperature = request.temperature if index == 0 else ALTERNATIVE_TEMPERATURE
        settings = replace(
            self.settings,
            threshold=request.threshold,
            max_steps=request.max_steps,
            one_per_step=request.mode == "ar",
            temperature=max(temperature, request.temperature),
        )
        if self.spec.expand_id is not None:
            bounds = (min(DREAMON_START, request.max_tokens), request.max_tokens)
            return self.infiller.fill_dreamon(
                prefix, suffix, bounds, settings, is_cancelled, generator
            )
        began, hits = time.perf_counter(), self.infiller.memo_hits
        length = self.infiller.probe_length(prefix, suffix, probe_lengths(request.max_tokens))
        probe_ms = (time.perf_counter() - began) * 1000
        prepared = self.infiller.memo_hits > hits  # the probe's lengths differ: hits came earlier
        run = self.infiller.fill(prefix, suffix, length, settings, is_cancelled, generator)
        run.full_ms, run.reused_context = run.full_ms + probe_ms, prepared
        return run

    def _context(self, prefix: str, suffix: str, gap: int) -> tuple[list[int], list[int]]:
        """Token ids of the text around the gap, cut nearest the cursor to what fits beside
        a gap of `gap` tokens in the model's positions (at most CONTEXT_BUDGET)."""
        for label, text in (("prefix", prefix), ("suffix", suffix)):
            if not isinstance(text, str):
                raise InputError(f"{label} must be text, got {type(text).__name__}")
            if "\x00" in text:
                raise InputError(f"{label} contains a NUL byte: binary files cannot be completed")
        encode = self.loaded.tokenizer.encode
        before = encode(prefix, add_special_tokens=False).ids
        after = encode(suffix, add_special_tokens=False).ids
        budget = max(0, min(CONTEXT_BUDGET, self.spec.max_positions - gap))
        keep_after = min(len(after), budget // 4)
        keep_before = min(len(before), budget - keep_after)
        return before[len(before) - keep_before :], after[:keep_after]

    def prepare(self, prefix: str, suffix: str) -> None:
        """Run the length probe's full forwards now; complete() finds them remembered.
        (DreamOn changes the gap's length every step: nothing can be computed ahead.)"""
        if self.spec.expand_id is None:
            max_tokens = CompletionRequest("", "").max_tokens
            before, after = self._context(prefix, suffix, max_tokens)
            self.infiller.probe_length(before, after, probe_lengths(max_tokens))

    def count_tokens(self, text: str) -> int:
        return len(self.loaded.tokenizer.encode(text, add_special_tokens=False).ids)

    def describe(self) -> dict[str, object]:
        spec, loaded = self.spec, self.loaded
        return {
            "model": str(loaded.folder),
            "name": loaded.folder.name,
            "family": spec.name,
            "runtime": f"torch {loaded.device.type} {str(loaded.dtype).removeprefix('torch.')}",
            "parameters": loaded.model.num_parameters(),
            "context_tokens": min(CONTEXT_BUDGET, spec.max_positions),
            "vocab_size": spec.vocab_size,
            "mask_id": spec.mask_id,
            "shifted_logits": spec.shifted,
            "length": "expand/delete" if spec.expand_id is not None else "probe + EOS trim",
            "dual_cache": self.settings.dual_cache,
            "score": self.settings.score,
        }


def probe_lengths(max_tokens: int) -> list[int]:
    """The probe's lengths, none longer than the request allows."""
    return sorted({min(n, max_tokens) for n in PROBE_LENGTHS})
