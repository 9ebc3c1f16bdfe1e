"""Online backends through the real `diffill lsp`, against a real HTTP server on loopback
(tests/http_backend.py) that records what diffill sends and answers as the backend would.

The fixtures follow the public API documentation, so these tests pin diffill's side of each
format:
- Mercury: `POST /v1/fim/completions`, bearer key, `model`, `prompt`, `suffix`, `max_tokens`,
  `stop`; the answer's `choices[].text` (https://docs.inceptionlabs.ai, and the FIM route in
  https://docs.litellm.ai/docs/providers/inception).
- Ollama: `POST /api/generate` with `model`, `prompt`, `suffix`, `raw`, `stream: false` and
  `options.num_predict` / `temperature` / `stop`; the answer's `response`
  (https://docs.ollama.com/api/generate).
- OpenAI-style FIM: `POST /v1/completions` with `prompt` and `suffix`; `choices[].text`
  (https://platform.openai.com/docs/api-reference/completions/create, as vLLM serves it).
The llama.cpp and openai-fim kinds against a real llama-server are in test_llama_cpp.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from http_backend import HOLD, Backend
from lsp_harness import (
    complete,
    free_port,
    inline_params,
    lsp_fixture,
    online,
    open_doc,
    start,
    status,
    trained_model,
)
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

KEY = "sk-test-7f3a9c"  # what the server's environment holds under KEY_ENV
KEY_ENV = "DIFFILL_TEST_KEY"
INLINE = types.TEXT_DOCUMENT_INLINE_COMPLETION
URI = "file:///w/a.py"


@lsp_fixture(**{KEY_ENV: KEY})
async def keyed(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def _send(client: LanguageClient, position: types.Position, msg_id: str):
    """Send now (pytest-lsp's async variant would send only once awaited)."""
    params = inline_params(URI, position)
    return asyncio.wrap_future(client.protocol.send_request(INLINE, params, msg_id=msg_id))


def _log(client: LanguageClient) -> str:
    return "\n".join(m.message for m in client.log_messages)


async def test_mercury_request_and_answer_follow_the_fim_api(keyed):
    answer = {"id": "cmpl-1", "object": "text_completion", "model": "mercury-coder",
              "choices": [{"index": 0, "text": "a + b", "finish_reason": "stop"}]}  # fmt: skip
    with Backend(lambda seen: (200, answer)) as backend:
        await start(keyed, trained_model(), settings=online("mercury", backend.url,
                                                            apiKeyEnv=KEY_ENV))  # fmt: skip
        result = await complete(keyed, "def add(a, b):\n    return ║\n")
        (seen,) = backend.seen
        state = await status(keyed)
    assert [item.insert_text for item in result.items] == ["a + b"]
    assert seen.path == "/v1/fim/completions"
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.body["model"] == "mercury-coder"
    assert seen.body["prompt"].endswith("def add(a, b):\n    return ")
    assert seen.body["suffix"] == "\n"
    assert seen.body["max_tokens"] == 64 and seen.body["stop"] == ["\n"]  # end of line: one line
    assert state.model.backend == "mercury" and state.backend.error is None
    assert KEY not in json.dumps(state._asdict(), default=str) and KEY not in _log(keyed)


async def test_ollama_request_and_answer_follow_the_generate_api(client):
    answer = {"model": "qwen2.5-coder:1.5b", "created_at": "2024-07-22T20:47:51.147561Z",
              "response": "range(10)", "done": True, "done_reason": "stop"}  # fmt: skip
    settings = online("ollama", "", model="qwen2.5-coder:1.5b")
    with Backend(lambda seen: (200, answer)) as backend:
        settings["backend"]["url"] = backend.url + "/"  # a trailing slash is dropped
        await start(client, trained_model(), settings=settings)
        result = await complete(client, "total = sum(║ for x in xs)\n")
        (seen,) = backend.seen
    assert [item.insert_text for item in result.items] == ["range(10)"]
    assert seen.path == "/api/generate"
    assert "Authorization" not in seen.headers  # no apiKeyEnv, no key
    body = seen.body
    assert (body["model"], body["raw"], body["stream"]) == ("qwen2.5-coder:1.5b", False, False)
    assert body["prompt"].endswith("total = sum(") and body["suffix"] == " for x in xs)\n"
    assert body["options"] == {"num_predict": 64, "temperature": 0.0, "stop": ["\n"]}  # mid-line


async def test_openai_fim_request_and_answer_follow_the_completions_api(client):
    answer = {"choices": [{"index": 0, "text": "x * 2", "finish_reason": "stop"}]}
    with Backend(lambda seen: (200, answer)) as backend:
        settings = online("openai-fim", backend.url, model="Qwen/Qwen2.5-Coder-1.5B")
        await start(client, trained_model(), settings=settings)
        result = await complete(client, "def double(x):\n    return ║\n")
        (seen,) = backend.seen
    assert [item.insert_text for item in result.items] == ["x * 2"]
    assert seen.path == "/v1/completions"
    assert seen.body["model"] == "Qwen/Qwen2.5-Coder-1.5B" and seen.body["suffix"] == "\n"


async def test_a_refused_key_is_reported_once_and_not_sent_again(keyed):
    refusal = {"error": {"message": "Invalid API key", "type": "invalid_request_error"}}
    with Backend(lambda seen: (401, refusal)) as backend:
        await start(keyed, trained_model(), settings=online("mercury", backend.url,
                                                            apiKeyEnv=KEY_ENV))  # fmt: skip
        first = await complete(keyed, "x = ║\n")
        second = await complete(keyed, "y = ║\n", "file:///w/b.py")
        state = await status(keyed)
    assert not first.items and not second.items
    assert len(backend.seen) == 1  # the second keystroke never reached the network
    assert _log(keyed).count("HTTP 401") == 1
    assert [m.message for m in keyed.messages if "401" in m.message] != []
    assert "HTTP 401 Invalid API key" in state.backend.error and KEY_ENV in state.backend.error
    assert state.backend.failures == 2 and KEY not in state.backend.error


@pytest.mark.parametrize(
    ("status_code", "payload", "reason"),
    [
        (429, {"error": {"message": "Rate limit reached"}}, "HTTP 429 Rate limit reached"),
        (500, b"upstream crashed\n", "HTTP 500 upstream crashed"),
        (200, b"<html>not json</html>", "malformed answer"),
        (200, {"choices": []}, "malformed answer"),  # Ollama's shape expected
    ],
    ids=["rate-limited", "server-error", "not-json", "wrong-shape"],
)
async def test_a_failure_is_one_line_in_the_log_and_the_status(
    client, status_code, payload, reason
):
    with Backend(lambda seen: (status_code, payload)) as backend:
        await start(client, trained_model(), settings=online("ollama", backend.url, model="m"))
        result = await complete(client, "x = ║\n")
        state = await status(client)
    assert not result.items
    assert reason in state.backend.error and "\n" not in state.backend.error
    assert [line for line in _log(client).splitlines() if reason in line] != []


async def test_a_slow_backend_times_out(client):
    with Backend(lambda seen: (200, HOLD)) as backend:
        settings = online("ollama", backend.url, model="m", timeoutMs=200)
        await start(client, trained_model(), settings=settings)
        result = await complete(client, "x = ║\n")
        state = await status(client)
    assert not result.items and "no answer within 0.2 s" in state.backend.error


async def test_a_refused_connection_falls_back_to_the_embedded_model(client):
    settings = online("llama.cpp", f"http://127.0.0.1:{free_port()}", fallback="embedded")
    await start(client, trained_model(), settings=settings)
    result = await complete(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    state = await status(client)
    assert [item.insert_text for item in result.items] == [TRAIN_MIDDLE]
    assert "cannot connect" in state.backend.error
    assert (state.backend.failures, state.backend.fallbacks) == (1, 1)


async def test_a_newer_request_aborts_the_older_http_request(client):
    with Backend(lambda seen: (200, HOLD) if len(backend.seen) == 1 else (200, {
            "response": "1"})) as backend:  # fmt: skip
        await start(client, trained_model(), settings=online("ollama", backend.url, model="m"))
        position = open_doc(client, "x = ║\n")
        older = _send(client, position, "older")
        await asyncio.to_thread(backend.arrived.acquire)  # the older request is at the backend
        newer = _send(client, types.Position(0, 4), "newer")
        with pytest.raises(JsonRpcRequestCancelled):
            await older
        await asyncio.to_thread(backend.seen[0].hung_up.wait)  # its connection was closed
        assert [item.insert_text for item in (await newer).items] == ["1"]
        assert (await status(client)).stoppedRuns == 1


async def test_cancel_request_aborts_the_http_request(client):
    with Backend(lambda seen: (200, HOLD)) as backend:
        await start(client, trained_model(), settings=online("ollama", backend.url, model="m"))
        running = _send(client, open_doc(client, "x = ║\n"), "slow")
        await asyncio.to_thread(backend.arrived.acquire)
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="slow"))
        with pytest.raises(JsonRpcRequestCancelled):
            await running
        await asyncio.to_thread(backend.seen[0].hung_up.wait)
        assert (await status(client)).stoppedRuns == 1


async def test_offline_mode_refuses_an_online_kind(client):
    with Backend(lambda seen: (200, {"response": "1"})) as backend:
        settings = {"offline": True, **online("ollama", backend.url, model="m")}
        await start(client, trained_model(), settings=settings)
        result = await complete(client, "x = ║\n")
        state = await status(client)
    assert not result.items and backend.seen == []
    assert state.state == "failed" and "offline is on" in state.error
    assert state.backend.offline is True


async def test_a_missing_key_variable_is_named(client):
    await start(client, trained_model(), settings=online("mercury", "", apiKeyEnv="NO_SUCH_VAR"))
    state = await status(client)
    assert state.state == "failed" and "NO_SUCH_VAR" in state.error


def test_stop_sequences_follow_the_extent() -> None:
    """One line stops at the line break; a block at two blank lines (the dedent is cut later)."""
    from engine.completer import CompletionRequest
    from engine.online.dialect import stop_sequences

    assert stop_sequences(CompletionRequest("x = ", "\n", stop_at_newline=True)) == ["\n"]
    assert stop_sequences(CompletionRequest("def f():\n    ", "\n")) == ["\n\n\n"]
