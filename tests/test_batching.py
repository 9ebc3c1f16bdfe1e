"""Step-level batching (engine/batching.py): requests answered together in batched model calls
get exactly the answers they get alone, on the real ONNX graphs of a tiny trained model."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX, copy_folder, shared_folder

from engine.batching import StepBatcher
from engine.completer import CompletionRequest
from engine.loading import open_completer

REQUESTS = [
    CompletionRequest(TRAIN_PREFIX, TRAIN_SUFFIX, max_tokens=24, max_steps=4),
    CompletionRequest("def sub(x, y):\n    return ", "\n", max_tokens=24, max_steps=4),
    CompletionRequest("import os\n\n\nclass Path:\n    def ", "", max_tokens=20),
    CompletionRequest("x = [", "]\nprint(x)\n", max_tokens=24, mode="ar"),
    CompletionRequest("for i in range(", "):\n    pass\n", max_tokens=16, num_candidates=3),
    CompletionRequest(TRAIN_PREFIX * 5, TRAIN_SUFFIX, max_tokens=24, max_steps=2),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_folder(tmp_path_factory)


def run_together(folder: Path, max_batch: int) -> tuple[list[tuple[str, ...]], dict]:
    """Every request at once through one batcher, each on a completer of its own as the
    server runs them; their answers and the rows of each kind of model call."""
    completer = open_completer(folder)
    rows: dict[str, list[int]] = {"encode": [], "denoise": []}
    batcher = StepBatcher(
        completer.runtime, max_batch, max_wait_ms=50, on_batch=lambda k, n: rows[k].append(n)
    )
    completer.runtime = batcher
    start = threading.Barrier(len(REQUESTS))

    def ask(request: CompletionRequest) -> tuple[str, ...]:
        own = completer.sibling()
        with batcher.session():
            start.wait()
            return tuple(c.text for c in own.complete(request).candidates)

    with ThreadPoolExecutor(len(REQUESTS)) as pool:
        answers = list(pool.map(ask, REQUESTS))
    batcher.close()
    return answers, rows


def alone(folder: Path) -> list[tuple[str, ...]]:
    completer = open_completer(folder)
    return [tuple(c.text for c in completer.complete(r).candidates) for r in REQUESTS]


def test_batched_requests_get_the_answers_they_get_alone(folder: Path) -> None:
    answers, rows = run_together(folder, max_batch=16)
    assert answers == alone(folder)
    assert answers[0] == (TRAIN_MIDDLE,)
    assert max(rows["denoise"]) > 1  # steps of different requests did share model calls
    assert max(rows["encode"]) > 1  # and so did their context encodes


def test_max_batch_1_runs_one_request_per_call(folder: Path) -> None:
    answers, rows = run_together(folder, max_batch=1)
    assert answers == alone(folder)
    assert set(rows["denoise"]) == {1, 3}  # 3: the 3-candidate request's first block, alone
    assert set(rows["encode"]) == {1}


def test_a_folder_without_the_batched_graph_serves_unbatched(folder: Path, tmp_path: Path) -> None:
    old = copy_folder(folder, tmp_path / "old")
    (old / "denoise_batch.onnx").unlink()
    completer = open_completer(old)
    assert not completer.runtime.batches
    batcher = StepBatcher(completer.runtime, max_batch=16)
    assert batcher.max_batch == 1
    batcher.close()
