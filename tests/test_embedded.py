"""EmbeddedCompleter: SPM context, truncation, K/V reuse across requests, prepare, errors."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX, fim_ids, shared_folder

from engine.completer import CompletionRequest
from engine.embedded import EmbeddedCompleter, common_prefix_length
from engine.errors import Cancelled, InputError
from engine.loading import open_completer
from engine.tokens import MIDDLE_ID, PREFIX_ID, SUFFIX_ID


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return shared_folder(tmp_path_factory)


@pytest.fixture
def completer(folder) -> EmbeddedCompleter:
    return open_completer(folder, runtime="onnx")


def test_completes_the_trained_gap_with_timings(completer) -> None:
    result = completer.complete(CompletionRequest(TRAIN_PREFIX, TRAIN_SUFFIX))
    assert result.text == TRAIN_MIDDLE
    assert result.timings.context_tokens == len(
        fim_ids(completer.tokenizer, TRAIN_PREFIX, TRAIN_SUFFIX)
    )
    assert result.timings.reused_tokens == 0 and result.extra["runtime"] == "onnx"


def test_context_is_suffix_first_with_each_side_tokenized_alone(completer) -> None:
    ids = completer.context_ids("a = 1\nb", "c = 2\n", 16)
    assert ids == fim_ids(completer.tokenizer, "a = 1\nb", "c = 2\n")
    assert ids[0] == SUFFIX_ID and ids[-1] == MIDDLE_ID and PREFIX_ID in ids


def test_long_context_keeps_the_text_nearest_the_cursor(folder) -> None:
    completer = open_completer(folder, runtime="onnx", max_context_tokens=67)
    prefix = "".join(f"value_{i} = {i}\n" for i in range(2000)) + "total = "
    suffix = "print(total)\n" + "# tail\n" * 2000
    ids = completer.context_ids(prefix, suffix, 16)
    assert len(ids) == 67  # the budget counts the three special tokens
    decoded = completer.tokenizer.decode(ids[ids.index(PREFIX_ID) + 1 : -1])
    assert decoded.endswith("value_1999 = 1999\ntotal = ")
    assert completer.tokenizer.decode(ids[1 : ids.index(PREFIX_ID)]).startswith("print(total)")
    assert completer.complete(CompletionRequest(prefix, suffix, max_tokens=16)).timings


def test_typing_reuses_the_cached_context_and_gives_the_same_answer(folder) -> None:
    warm = open_completer(folder, runtime="onnx")
    warm.prepare(TRAIN_PREFIX[:-7], TRAIN_SUFFIX)
    request = CompletionRequest(TRAIN_PREFIX, TRAIN_SUFFIX, temperature=1.0, num_candidates=3)
    reused = warm.complete(request)
    fresh = open_completer(folder, runtime="onnx").complete(request)
    assert reused.timings.reused_tokens > len(TRAIN_SUFFIX) // 4
    assert reused.timings.reused_tokens < reused.timings.context_tokens
    assert [c.text for c in reused.candidates] == [c.text for c in fresh.candidates]


class CountingTokenizer:
    """The real tokenizer, counting its encode calls."""

    def __init__(self, inner) -> None:
        self.inner, self.encodes = inner, 0

    def encode(self, *args, **kwargs):
        self.encodes += 1
        return self.inner.encode(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_a_request_for_the_prepared_context_tokenizes_only_what_changed(completer) -> None:
    completer.tokenizer = counting = CountingTokenizer(completer.tokenizer)
    completer.prepare(TRAIN_PREFIX, TRAIN_SUFFIX)
    assert counting.encodes == 2  # each side alone
    assert completer.complete(CompletionRequest(TRAIN_PREFIX, TRAIN_SUFFIX)).text == TRAIN_MIDDLE
    assert counting.encodes == 2
    typed = completer.complete(CompletionRequest(TRAIN_PREFIX + "x", TRAIN_SUFFIX))
    assert counting.encodes == 3 and typed.timings.reused_tokens > 0


def test_reused_cache_matches_a_fresh_encode(folder) -> None:
    warm, fresh = open_completer(folder, runtime="onnx"), open_completer(folder, runtime="onnx")
    warm.prepare("def f(x):\n    return x * 2\n\ndef g(", "")
    ids = warm.context_ids("def f(x):\n    return x * 2\n\ndef h(y):\n    ", "", 16)
    kv_warm, reused, _ = warm._encode(ids)
    kv_fresh, none_reused, _ = fresh._encode(ids)
    assert reused > 5 and none_reused == 0
    np.testing.assert_allclose(kv_warm, kv_fresh, atol=1e-5)


def test_prepare_and_complete_from_several_threads(folder) -> None:
    completer = open_completer(folder, runtime="onnx")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                completer.prepare(TRAIN_PREFIX + "#" * ((n + i) % 3), TRAIN_SUFFIX)
                completer.complete(CompletionRequest(TRAIN_PREFIX, TRAIN_SUFFIX))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert completer.complete(CompletionRequest(TRAIN_PREFIX, TRAIN_SUFFIX)).text == TRAIN_MIDDLE


@pytest.mark.parametrize("mode", ["ar", "diffusion"])
def test_stop_at_newline_decodes_nothing_past_the_first_line_break(tmp_path_factory, mode) -> None:
    """A one-line request ends with the token that breaks the line: fewer steps than the
    same seeded request without the stop, and no canvas after the one holding the break."""
    random_model = open_completer(shared_folder(tmp_path_factory, "random", train_steps=0))
    base = CompletionRequest("x = ", "", max_tokens=64, mode=mode, temperature=1.0, max_steps=4)
    runs = [random_model.complete(dataclasses.replace(base, seed=seed)) for seed in range(40)]
    free = next(r for r in runs if "\n" in r.text.lstrip("\n"))
    base = dataclasses.replace(base, seed=runs.index(free))
    line = random_model.complete(dataclasses.replace(base, stop_at_newline=True))
    (one,), (all_,) = line.candidates, free.candidates
    _, newline, tail = one.text.partition("\n")
    assert newline and not tail.strip() and free.text.startswith(one.text)
    canvas = random_model.config.canvas_size
    assert one.tokens < all_.tokens and one.steps < all_.steps
    assert one.steps <= -(-one.tokens // canvas) * (canvas if mode == "ar" else 4)


def test_candidates_are_distinct(completer) -> None:
    result = completer.complete(
        CompletionRequest("x = ", "", num_candidates=6, temperature=1.5, max_tokens=6)
    )
    texts = [c.text for c in result.candidates]
    assert len(texts) == len(set(texts)) >= 2


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (CompletionRequest("", ""), "both empty"),
        (CompletionRequest("x", "", max_tokens=0), "max_tokens"),
        (CompletionRequest("x", "", threshold=1.5), "threshold"),
        (CompletionRequest("x", "", num_candidates=0), "num_candidates"),
        (CompletionRequest("x", "", mode="beam"), "mode"),  # type: ignore[arg-type]
        (CompletionRequest("x", "", max_tokens=100_000), "no room"),
    ],
)
def test_bad_requests_name_the_problem(completer, request_, problem) -> None:
    with pytest.raises(InputError, match=problem):
        completer.complete(request_)


def test_cancelled_before_any_work(completer) -> None:
    with pytest.raises(Cancelled):
        completer.complete(CompletionRequest("x = ", ""), is_cancelled=lambda: True)


def test_describe_and_count_tokens(completer, folder) -> None:
    info = completer.describe()
    assert info["runtime"] == "onnx" and info["model"] == str(folder)
    assert info["canvas_size"] == 8 and info["parameters"] > 100_000
    assert completer.count_tokens("def f(x):\n    return x\n") == len(
        completer.tokenizer.encode("def f(x):\n    return x\n").ids
    )


def test_common_prefix_length() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0
