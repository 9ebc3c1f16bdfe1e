"""Clients of other servers, pointed at `diffill serve`: llama.vim's /infill request, field
for field, and diffill's own language server with its `openai-fim` online backend."""

from __future__ import annotations

import httpx
import pytest
from lsp_harness import EMBEDDED, complete, embedded_model_ready, online, start, trained_model
from serve_harness import Served, serving
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX, shared_folder

pytestmark = pytest.mark.slow
RESPONSE_FIELDS = [
    "content",
    "timings/prompt_n",
    "timings/prompt_ms",
    "timings/prompt_per_token_ms",
    "timings/prompt_per_second",
    "timings/predicted_n",
    "timings/predicted_ms",
    "timings/predicted_per_token_ms",
    "timings/predicted_per_second",
    "truncated",
    "tokens_cached",
]


def llama_vim_request(prefix_lines: list[str], middle: str, suffix: str, extra: list) -> dict:
    """The body llama.vim's llama#fim sends (autoload/llama.vim): the lines above the cursor
    as input_prefix, the cursor line up to the cursor as prompt, the ring buffer's chunks as
    input_extra, and sampling fields llama-server reads and diffill ignores."""
    return {
        "id_slot": 0,
        "input_prefix": "".join(line + "\n" for line in prefix_lines),
        "input_suffix": suffix,
        "input_extra": extra,
        "prompt": middle,
        "n_predict": 128,
        "stop": [],
        "n_indent": len(middle) - len(middle.lstrip()),
        "top_k": 40,
        "top_p": 0.90,
        "samplers": ["top_k", "top_p", "infill"],
        "stream": False,
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 1000,
        "response_fields": RESPONSE_FIELDS,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    with serving(shared_folder(tmp_path_factory)) as served:
        yield served


def infill(served: Served, body: dict) -> dict:
    answer = httpx.post(served.url + "/infill", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_llama_vim_request_gets_the_fields_it_reads(trained: Served) -> None:
    lines = TRAIN_PREFIX.split("\n")  # ["def add(a, b):", "    return "]
    body = llama_vim_request(lines[:-1], lines[-1], TRAIN_SUFFIX, [])
    answer = infill(trained, body)
    assert sorted(answer) == sorted(RESPONSE_FIELDS)  # flat paths, as llama-server answers
    assert answer["content"] == TRAIN_MIDDLE
    assert answer["timings/predicted_n"] == 3 and answer["truncated"] is False


def test_llama_vim_ring_chunks_reach_the_context(trained: Served) -> None:
    lines = TRAIN_PREFIX.split("\n")
    chunk = {"text": "def mul(a, b):\n    return a * b\n", "time": 1700000000, "filename": "m.py"}
    alone = infill(trained, llama_vim_request(lines[:-1], lines[-1], TRAIN_SUFFIX, []))
    extra = infill(trained, llama_vim_request(lines[:-1], lines[-1], TRAIN_SUFFIX, [chunk]))
    assert extra["timings/prompt_n"] > alone["timings/prompt_n"] + 5
    warm_up = {**llama_vim_request([], "", "", [chunk]), "n_predict": 0}  # llama.vim's ring update
    assert infill(trained, warm_up)["content"] == ""


@pytest.mark.skipif(not embedded_model_ready(), reason="models/ holds no committed model")
def test_llama_vim_request_with_the_project_model() -> None:
    with serving(EMBEDDED) as served:
        lines = ["import os", "", "", "def list_python_files(folder):"]
        body = llama_vim_request(lines, "    return [", "\n", [])
        answer = infill(served, body)
        (model,) = httpx.get(served.url + "/v1/models").json()["data"]
    assert isinstance(answer["content"], str) and answer["timings/prompt_n"] > 10
    assert model["meta"]["runtime"] == "onnx-int8" and model["meta"]["max_batch"] == 8


async def test_the_openai_fim_backend_completes_through_the_language_server(client, trained):
    settings = online("openai-fim", trained.url)
    await start(client, trained_model(), settings=settings)
    result = await complete(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    assert [item.insert_text for item in result.items] == [TRAIN_MIDDLE]
    assert trained.metric('diffill_requests_total{route="/v1/completions",status="200"}') == 1
