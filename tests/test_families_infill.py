"""Infilling as the families expect it: logit alignment, DualCache, DreamOn expand/delete,
unmasking rules, and the Completer contract (ar mode, candidates, cancellation, prepare).

Hand-built checkpoints make outcomes exact: with every attention output and MLP output
projection zeroed, a position's output depends only on its own token, and the head is solved
so that chosen input tokens predict chosen tokens with chosen probabilities.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.checkpoint import load_weights, save_weights
from engine.completer import CompletionRequest
from engine.errors import Cancelled
from engine.families import open_completer
from engine.families.infill import DecodeSettings, Infiller, apply_length_edits, trim_at_eos
from engine.families.loading import hf_name, llada_name, load_family
from engine.families.spec import DREAM, LLADA, QWEN2_MDM, parse_spec
from engine.families.synthetic import DREAMON_SPECIAL, TINY, write_folder
from engine.families.unmask import choose, predict, step_quota

EOS, MASK, EXPAND = DREAMON_SPECIAL["eos"], DREAMON_SPECIAL["mask"], DREAMON_SPECIAL["expand"]
ONE_PER_STEP = DecodeSettings(threshold=1.0)  # only the single most confident position


def logit_for(probability: float, rivals: int = TINY["vocab"] - 1) -> float:
    """The logit that gives `probability` against `rivals` zero logits."""
    return math.log(probability / (1 - probability) * rivals)


def hand_built(folder: Path, family: str, rows: dict[int, dict[int, float]], **kw) -> Path:
    """A published-format folder whose model maps input token -> output logits as in rows."""
    write_folder(folder, family, **kw)
    to_disk = llada_name if family == LLADA else str
    state = {hf_name(k) if family == LLADA else k: v for k, v in load_weights(folder).items()}
    for name in state:
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            state[name] = np.zeros_like(state[name])
    embed, norm = state["model.embed_tokens.weight"], state["model.norm.weight"]
    inputs = list(rows)
    x = embed[inputs]  # (K, E)
    hidden = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6) * norm  # final norm (K, E)
    targets = np.zeros((embed.shape[0], len(inputs)), dtype=np.float64)  # (V, K)
    for k, token in enumerate(inputs):
        for out, logit in rows[token].items():
            targets[out, k] = logit
    state["lm_head.weight"] = (targets @ np.linalg.pinv(hidden.T)).astype(np.float32)
    save_weights({to_disk(k): v for k, v in state.items()}, folder, 100_000)
    return folder


def ids_of(text: str) -> list[int]:
    """Token ids in every synthetic folder's byte-level tokenizer."""
    from engine.families.synthetic import byte_tokenizer

    return byte_tokenizer(TINY["vocab"], DREAMON_SPECIAL).encode(text).ids


def chain_rows(mask_row: dict[int, float]) -> dict[int, dict[int, float]]:
    """'=' -> a (p 0.5), a -> b, b -> c, c -> EOS (p 0.99), mask -> mask_row."""
    a, b, c, eq = (ids_of(ch)[0] for ch in "abc=")
    sure = logit_for(0.99)
    return {eq: {a: logit_for(0.5)}, MASK: mask_row, a: {b: sure}, b: {c: sure}, c: {EOS: sure}}


def build_chain(tmp_path: Path, family: str, mask_row: dict[int, float], **kw) -> Infiller:
    folder = hand_built(tmp_path / family, family, chain_rows(mask_row), **kw)
    loaded = load_family(folder, "cpu")
    return Infiller(loaded.model, loaded.spec, loaded.device)


def test_shifted_dream_reads_the_previous_position(tmp_path: Path) -> None:
    z = ids_of("z")[0]
    infiller = build_chain(tmp_path, DREAM, {z: logit_for(0.3)})
    out = infiller.fill(ids_of("x="), ids_of("\n"), 4, ONE_PER_STEP, lambda: False)
    assert out.ids == ids_of("abc")  # '=' -> a -> b -> c -> EOS, each read one position left
    assert out.steps == 4


def test_unshifted_llada_reads_its_own_position(tmp_path: Path) -> None:
    z = ids_of("z")[0]
    infiller = build_chain(tmp_path, LLADA, {z: logit_for(0.3)})
    out = infiller.fill(ids_of("x="), ids_of("\n"), 4, ONE_PER_STEP, lambda: False)
    assert out.ids == ids_of("zzzz")  # each masked position predicts from the mask itself


@pytest.mark.parametrize("family", [DREAM, LLADA])
def test_gap_logits_alignment(tmp_path: Path, family: str) -> None:
    loaded = load_family(write_folder(tmp_path / family, family), "cpu")
    infiller = Infiller(loaded.model, loaded.spec, loaded.device)
    ids = torch.randint(0, 300, (1, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hidden, _ = loaded.model(ids)
        full = loaded.model.logits(hidden)[0]
        gap = infiller.gap_logits(hidden, 0, 8, 12)
    source = slice(7, 11) if family == DREAM else slice(8, 12)
    keep = [i for i in range(full.shape[1]) if i != loaded.spec.mask_id]
    torch.testing.assert_close(gap[:, keep], full[source][:, keep])
    assert torch.isinf(gap[:, loaded.spec.mask_id]).all()  # never predict the mask itself


@pytest.mark.parametrize("family", [DREAM, LLADA, QWEN2_MDM])
def test_dual_cache_window_is_exact_against_a_fresh_cache(tmp_path: Path, family: str) -> None:
    """The block-only forward over cached K/V equals the full forward when the cache is
    computed on the same sequence; DualCache's only approximation is the cache's age."""
    loaded = load_family(write_folder(tmp_path / family, family), "cpu")
    ids = torch.randint(0, 300, (1, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        hidden, cache = loaded.model(ids)
        window, _ = loaded.model(ids[:, 11:20], 11, cache)
        stale_cache = loaded.model(torch.full_like(ids, MASK))[1]
        stale, _ = loaded.model(ids[:, 11:20], 11, stale_cache)
    torch.testing.assert_close(window, hidden[:, 11:20], atol=1e-5, rtol=1e-5)
    assert (stale - hidden[:, 11:20]).abs().max() > 1e-4  # an old cache does change outputs


def test_dual_cache_runs_one_full_forward_per_block(tmp_path: Path) -> None:
    loaded = load_family(write_folder(tmp_path / "dream", DREAM), "cpu")
    infiller = Infiller(loaded.model, loaded.spec, loaded.device)
    prefix, suffix = list(range(40, 80)), list(range(100, 110))
    settings = DecodeSettings(threshold=1.0, block_size=4)
    cached = infiller.fill(prefix, suffix, 8, settings, lambda: False)
    exact = infiller.fill(prefix, suffix, 8, replace(settings, dual_cache=False), lambda: False)
    assert 1 <= cached.full_forwards <= 2  # one per block of 4 (the second may not be needed)
    assert cached.window_forwards == cached.steps - cached.full_forwards > 0
    assert exact.window_forwards == 0
    assert exact.full_forwards == exact.steps


def test_dreamon_expands_then_deletes(tmp_path: Path) -> None:
    z = ids_of("z")[0]
    mask_row = {EXPAND: logit_for(0.8), z: logit_for(0.3)}  # z when expanding is not allowed
    infiller = build_chain(tmp_path, DREAM, mask_row, special=DREAMON_SPECIAL)
    assert infiller.spec.expand_id == EXPAND
    out = infiller.fill_dreamon(ids_of("x="), ids_of("\n"), (2, 4), ONE_PER_STEP, lambda: False)
    # [M M] -expand-> [M M M] -expand-> [M M M M] (max) -> a b c, then EOS deletes the 4th
    assert out.expansions == 2
    assert out.ids == ids_of("abc")
    assert out.steps == 6


def test_dreamon_completer_deletes_unneeded_positions(tmp_path: Path) -> None:
    z = ids_of("z")[0]
    rows = chain_rows({EXPAND: logit_for(0.8), z: logit_for(0.3)})
    folder = hand_built(tmp_path / "dreamon", DREAM, rows, special=DREAMON_SPECIAL)
    completer = open_completer(folder, "cpu")
    result = completer.complete(CompletionRequest("x=", "\n", max_tokens=4, threshold=1.0))
    assert result.text == "abc"
    assert result.candidates[0].tokens == 3


def test_length_edits(tmp_path: Path) -> None:
    spec = parse_spec(write_folder(tmp_path / "dreamon", DREAM, special=DREAMON_SPECIAL))
    gap = [MASK, EXPAND, 7, EOS, MASK]
    assert apply_length_edits(gap, [1, 3], spec, 10) == [MASK, MASK, MASK, 7, MASK]
    assert apply_length_edits(gap, [1], spec, 5) == [MASK, MASK, 7, EOS, MASK]  # no room
    assert apply_length_edits(gap, [], spec, 10) == gap  # only fresh predictions edit
    assert trim_at_eos([5, 6, EOS, 7], spec) == [5, 6]


def test_scores() -> None:
    logits = torch.tensor([[10.0, 0.0, 0.0], [1.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    tokens, confidence = predict(logits, "confidence", 0.0, None)
    assert tokens.tolist() == [0, 0, 0]
    probs = torch.softmax(logits, -1)
    torch.testing.assert_close(confidence, probs[:, 0])
    _, margin = predict(logits, "margin", 0.0, None)
    assert margin[1] == pytest.approx(0.0, abs=1e-6)  # a tie has no margin
    _, certainty = predict(logits, "entropy", 0.0, None)
    assert certainty[0] > certainty[2] > certainty[1]
    with pytest.raises(ValueError, match="unknown unmasking score 'loss'"):
        predict(logits, "loss", 0.0, None)


def test_choose_and_quota() -> None:
    scores = torch.tensor([0.2, 0.95, 0.5, 0.91])
    assert choose(scores, 0.9, 1, False).tolist() == [1, 3]
    assert sorted(choose(scores, 0.9, 3, False).tolist()) == [1, 2, 3]
    assert choose(scores, 0.99, 1, False).tolist() == [1]  # at least the best one
    assert choose(scores, 0.9, 1, True).tolist() == [0]  # ar: leftmost
    assert step_quota(8, 0, None) == 1
    assert step_quota(8, 0, 2) == 4
    assert step_quota(3, 5, 2) == 3  # past the budget: everything left


@pytest.fixture(scope="module")
def tiny_completer(tmp_path_factory: pytest.TempPathFactory):
    return open_completer(write_folder(tmp_path_factory.mktemp("m") / "dream", DREAM), "cpu")


def test_ar_fills_left_to_right_one_per_step(tmp_path: Path) -> None:
    z = ids_of("z")[0]
    infiller = build_chain(tmp_path, DREAM, {z: logit_for(0.3)})
    everything = DecodeSettings(threshold=0.0)  # diffusion: fill every position in one step
    ar = infiller.fill(ids_of("x="), ids_of("\n"), 4, replace(everything, one_per_step=True),
                       lambda: False)  # fmt: skip
    parallel = infiller.fill(ids_of("x="), ids_of("\n"), 4, everything, lambda: False)
    assert (ar.ids, ar.steps) == (ids_of("abc"), 4)  # a, b, c, then EOS
    assert (parallel.ids, parallel.steps) == (ids_of("azzz"), 1)  # all from the first forward


def test_step_budget_is_honoured(tiny_completer) -> None:
    request = CompletionRequest("x = ", "\n", max_tokens=8, max_steps=2, threshold=1.0)
    assert tiny_completer.complete(request).candidates[0].steps <= 2


def test_candidates_are_reproducible(tiny_completer) -> None:
    request = CompletionRequest("x = ", "\n", max_tokens=8, num_candidates=3, seed=5)
    first = tiny_completer.complete(request)
    again = tiny_completer.complete(request)
    assert len(first.candidates) == 3
    assert first.candidates == again.candidates


def test_cancellation_between_steps(tiny_completer) -> None:
    calls = []

    def cancel_after_first() -> bool:
        calls.append(1)
        return True

    request = CompletionRequest("x = ", "\n", max_tokens=8, threshold=1.0)
    with pytest.raises(Cancelled):
        tiny_completer.complete(request, cancel_after_first)
    assert calls == [1]


def test_prepare_leaves_only_the_canvas_steps(tiny_completer) -> None:
    tiny_completer.infiller.forget()
    tiny_completer.prepare("def g(y):\n    ", "\n")
    remembered = len(tiny_completer.infiller._memo)
    assert remembered == 3  # one full forward per probed gap length
    request = CompletionRequest("def g(y):\n    ", "\n", max_tokens=64)
    prepared = tiny_completer.complete(request)
    assert prepared.timings.reused_tokens == prepared.timings.context_tokens > 0
    tiny_completer.infiller.forget()
    cold = tiny_completer.complete(request)
    assert cold.candidates == prepared.candidates
    assert cold.timings.reused_tokens == 0
