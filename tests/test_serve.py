"""`diffill serve` end to end: the real command on loopback with the tiny trained model,
asked through each route as its clients ask (OpenAI completions, Mercury's FIM route,
llama.cpp's /infill), and its models, health and metrics routes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from serve_harness import Served, serving
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX, shared_folder

pytestmark = pytest.mark.slow
FIM = {"prompt": TRAIN_PREFIX, "suffix": TRAIN_SUFFIX, "max_tokens": 16}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def server(folder: Path):
    with serving(folder) as served:
        yield served


@pytest.mark.parametrize("route", ["/v1/completions", "/v1/fim/completions"])
def test_openai_and_mercury_routes_fill_the_gap(server: Served, route: str) -> None:
    answer = httpx.post(server.url + route, json=FIM, timeout=30).json()
    (choice,) = answer["choices"]
    assert choice["text"] == TRAIN_MIDDLE and choice["finish_reason"] == "stop"
    assert answer["object"] == "text_completion" and answer["usage"]["completion_tokens"] == 3


def test_stream_sends_the_text_then_the_finish_then_done(server: Served) -> None:
    with httpx.stream("POST", server.url + "/v1/completions", json={**FIM, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e)["choices"][0] for e in events[:-1]]
    assert "".join(c["text"] for c in chunks) == TRAIN_MIDDLE
    assert [c["finish_reason"] for c in chunks] == [None, "stop"]


def test_stop_sequences_cut_the_text_and_diffill_fields_are_accepted(server: Served) -> None:
    body = {**FIM, "stop": [" +"], "steps": 8, "mode": "ar", "top_k": 40, "whatever": {}}
    answer = httpx.post(server.url + "/v1/completions", json=body, timeout=30).json()
    assert answer["choices"][0]["text"] == "a"


def test_n_asks_for_alternatives(server: Served) -> None:
    body = {**FIM, "n": 3, "temperature": 0.0}
    choices = httpx.post(server.url + "/v1/completions", json=body, timeout=30).json()["choices"]
    assert 1 <= len(choices) <= 3 and choices[0]["text"] == TRAIN_MIDDLE
    assert len({c["text"] for c in choices}) == len(choices)  # repeats are dropped


def test_infill_answers_content(server: Served) -> None:
    body = {"input_prefix": TRAIN_PREFIX, "input_suffix": TRAIN_SUFFIX, "n_predict": 16}
    answer = httpx.post(server.url + "/infill", json=body, timeout=30).json()
    assert answer["content"] == TRAIN_MIDDLE and answer["timings"]["predicted_n"] == 3


def test_infill_time_limit_answers_what_was_committed(server: Served) -> None:
    """`ar` commits one token a step, so a limit that passes within the first step (a
    nanosecond) leaves exactly the first token; without the limit all three come."""
    body = {"input_prefix": TRAIN_PREFIX, "input_suffix": TRAIN_SUFFIX, "mode": "ar"}
    whole = httpx.post(server.url + "/infill", json=body, timeout=30).json()
    cut = httpx.post(server.url + "/infill", json={**body, "t_max_predict_ms": 1e-6}, timeout=30)
    assert (whole["content"], whole["stop_type"], whole["timings"]["predicted_n"]) == (
        TRAIN_MIDDLE,
        "eos",
        3,
    )
    assert (cut.json()["content"], cut.json()["stop_type"]) == ("a", "limit")
    assert cut.json()["timings"]["predicted_n"] == 1


def test_models_health_and_metrics(server: Served, folder: Path) -> None:
    httpx.post(server.url + "/v1/completions", json=FIM, timeout=30)
    (model,) = httpx.get(server.url + "/v1/models").json()["data"]
    assert model["id"] == folder.name and model["meta"]["runtime"] == "onnx-int8"
    assert model["meta"]["max_batch"] == 8  # the folder has the batched graph
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    text = httpx.get(server.url + "/metrics").text
    assert server.metric('diffill_requests_total{route="/v1/completions",status="200"}') >= 1
    assert 'diffill_request_seconds_bucket{route="/v1/completions",le="+Inf"}' in text
    assert server.metric('diffill_batch_rows_count{kind="denoise"}') >= 1
    assert "diffill_queue_depth 0" in text.splitlines()
