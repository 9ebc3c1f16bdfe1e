"""Sampler contracts on real tiny models under ONNX Runtime: one trained to fill `a + b`
then <eom>, one with random weights that rarely stops."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX, fim_ids, shared_folder

from engine.errors import Cancelled
from engine.loading import load_tokenizer
from engine.runtime_onnx import OnnxRuntime
from engine.sampler import (
    SamplerSettings,
    choose_confident,
    close_predicted_end,
    eom_probability,
    generate,
    predict,
)
from engine.tokens import EOM_ID, MASK_ID


class CountingRuntime:
    """A real runtime that also counts its denoise calls."""

    def __init__(self, runtime: OnnxRuntime) -> None:
        self.inner, self.name, self.calls = runtime, runtime.name, 0

    def encode(self, ids: np.ndarray, past: np.ndarray) -> np.ndarray:
        return self.inner.encode(ids, past)

    def denoise(self, canvas: np.ndarray, kv: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.inner.denoise(canvas, kv)


def _context(folder, prefix=TRAIN_PREFIX, suffix=TRAIN_SUFFIX):
    runtime = OnnxRuntime(folder)
    tokenizer = load_tokenizer(folder, runtime.config)
    c = runtime.config
    empty = np.zeros((c.n_layers, 2, 1, c.n_heads, 0, c.head_dim), dtype=np.float32)
    ids = np.asarray([fim_ids(tokenizer, prefix, suffix)], dtype=np.int64)
    return CountingRuntime(runtime), runtime.encode(ids, empty), tokenizer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _context(shared_folder(tmp_path_factory))


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    return _context(shared_folder(tmp_path_factory, "random", train_steps=0), "x = ", "")


def _settings(runtime, **overrides) -> SamplerSettings:
    return SamplerSettings(canvas_size=runtime.inner.config.canvas_size, **overrides)


@pytest.mark.parametrize("mode", ["diffusion", "ar"])
def test_trained_model_fills_the_gap_and_stops_at_eom(trained, mode) -> None:
    runtime, kv, tokenizer = trained
    runtime.calls = 0
    (gen,), _ = generate(runtime, kv, _settings(runtime, mode=mode, max_tokens=64))
    assert tokenizer.decode(gen.tokens) == TRAIN_MIDDLE
    assert gen.finished and EOM_ID not in gen.tokens
    assert runtime.calls == gen.steps <= runtime.inner.config.canvas_size  # one block only


@pytest.mark.parametrize("mode", ["diffusion", "ar"])
def test_full_length_decodes_every_token_past_where_the_model_would_stop(trained, mode) -> None:
    runtime, kv, tokenizer = trained
    settings = _settings(runtime, mode=mode, max_tokens=40, length="full")
    (gen,), _ = generate(runtime, kv, settings)
    assert len(gen.tokens) == 40 and EOM_ID not in gen.tokens and not gen.finished
    assert tokenizer.decode(gen.tokens).startswith(TRAIN_MIDDLE)


def test_ar_takes_one_step_per_token_and_diffusion_fewer(trained) -> None:
    runtime, kv, _ = trained
    (ar,), _ = generate(runtime, kv, _settings(runtime, mode="ar"))
    (diffusion,), _ = generate(runtime, kv, _settings(runtime, threshold=0.0))
    assert ar.steps == len(ar.tokens) + 1  # the tokens, then the <eom>
    assert diffusion.steps == 1 and diffusion.tokens == ar.tokens


def test_step_limit_forces_several_tokens_per_step(untrained) -> None:
    runtime, kv, _ = untrained
    c = runtime.inner.config.canvas_size
    (gen,), _ = generate(runtime, kv, _settings(runtime, threshold=1.0, max_steps=2, max_tokens=c))
    assert gen.steps == 2 and len(gen.tokens) == c


@pytest.mark.parametrize("max_tokens", [1, 5, 19])
def test_output_respects_the_token_limit_across_blocks(untrained, max_tokens) -> None:
    runtime, kv, _ = untrained
    (gen,), _ = generate(runtime, kv, _settings(runtime, mode="ar", max_tokens=max_tokens))
    assert len(gen.tokens) == max_tokens and not gen.finished  # 19: three blocks of 8


def test_no_special_tokens_are_ever_emitted(untrained) -> None:
    runtime, kv, _ = untrained
    gens, _ = generate(runtime, kv, _settings(runtime, max_tokens=40, temperature=2.0), 4)
    emitted = [t for gen in gens for t in gen.tokens]
    assert emitted and min(emitted) > EOM_ID


def test_predict_never_picks_mask_even_when_it_scores_highest() -> None:
    logits = np.zeros((1, 3, 10), dtype=np.float32)
    logits[..., MASK_ID] = 50.0
    logits[0, :, 7] = 1.0
    tokens, confidence = predict(logits, [0.0], [np.random.default_rng(0)])
    assert tokens.tolist() == [[7, 7, 7]]
    assert np.all(confidence < 1.0)


def test_confident_choice_takes_threshold_passers_the_frontier_and_enough_best() -> None:
    open_ = np.array([[False, True, True, True, False]])
    confidence = np.array([[0.1, 0.2, 0.95, 0.5, 0.99]], dtype=np.float32)
    assert choose_confident(open_, confidence, 0.9, 8).tolist() == [
        [False, True, True, False, False]  # the leftmost open one and the confident one
    ]
    low = np.array([[0.1, 0.2, 0.3, 0.5, 0.99]], dtype=np.float32)
    assert choose_confident(open_, low, 0.9, 8).tolist() == [[False, True, False, False, False]]
    two_steps_left = choose_confident(open_, low, 0.9, 2)  # 3 open: 2 now, the frontier and
    assert two_steps_left.tolist() == [[False, True, False, True, False]]  # the best one
    assert choose_confident(open_, low, 0.9, 1).tolist() == [[False, True, True, True, False]]


def test_cancellation_raises_between_steps(untrained) -> None:
    runtime, kv, _ = untrained
    runtime.calls = 0
    with pytest.raises(Cancelled):
        generate(
            runtime, kv, _settings(runtime, mode="ar"), is_cancelled=lambda: runtime.calls >= 3
        )
    assert runtime.calls == 3


def test_sampling_is_seeded(untrained) -> None:
    runtime, kv, _ = untrained
    runs = [
        generate(runtime, kv, _settings(runtime, temperature=1.0, seed=seed, max_tokens=8))[0][0]
        for seed in (1, 1, 2)
    ]
    assert runs[0].tokens == runs[1].tokens != runs[2].tokens


def test_single_line_stop_token_ends_the_gap_and_is_kept(untrained) -> None:
    runtime, kv, _ = untrained
    (free,), _ = generate(runtime, kv, _settings(runtime, mode="ar", max_tokens=32))
    stop = free.tokens[3]
    end = free.tokens.index(stop) + 1
    settings = _settings(runtime, mode="ar", max_tokens=32, stop_ids=frozenset({stop}))
    (gen,), _ = generate(runtime, kv, settings)
    assert gen.tokens == free.tokens[:end]
    assert gen.finished and gen.steps == end


def test_diffusion_closes_positions_after_a_stop_token(untrained) -> None:
    runtime, kv, _ = untrained
    (free,), _ = generate(runtime, kv, _settings(runtime, max_tokens=32))
    stops = frozenset(free.tokens[:4])
    (gen,), _ = generate(runtime, kv, _settings(runtime, max_tokens=32, stop_ids=stops))
    assert gen.finished
    assert gen.tokens[-1] in stops and stops.isdisjoint(gen.tokens[:-1])


def test_predicted_length_commits_the_end_in_the_first_pass(trained) -> None:
    runtime, kv, tokenizer = trained
    one_per_step = {"threshold": 1.0, "max_tokens": runtime.inner.config.canvas_size}
    (blocks,), _ = generate(runtime, kv, _settings(runtime, **one_per_step))
    (predicted,), _ = generate(runtime, kv, _settings(runtime, length="predicted", **one_per_step))
    assert tokenizer.decode(predicted.tokens) == tokenizer.decode(blocks.tokens) == TRAIN_MIDDLE
    assert predicted.steps == len(predicted.tokens)  # steps only on text: the end came at once
    assert blocks.steps > predicted.steps


def test_close_predicted_end_closes_from_the_first_likely_end() -> None:
    canvas = np.array([[7, MASK_ID, MASK_ID, MASK_ID], [MASK_ID] * 4])
    open_ = canvas == MASK_ID
    p_eom = np.array([[0.9, 0.2, 0.6, 0.4], [0.1, 0.3, 0.45, 0.2]])
    close_predicted_end(canvas, open_, p_eom)
    assert canvas.tolist() == [[7, MASK_ID, EOM_ID, EOM_ID], [MASK_ID] * 4]  # row 1: no end yet
    assert open_.tolist() == [[False, True, False, False], [True] * 4]


def test_eom_probability_is_the_softmax_share_of_eom() -> None:
    logits = np.zeros((1, 2, 8), dtype=np.float32)
    logits[0, 0, EOM_ID] = np.log(7.0)  # 7 / (7 + 7 others)
    assert np.allclose(eom_probability(logits), [[0.5, 1 / 8]])
