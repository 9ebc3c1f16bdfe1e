"""The request parsing and answer shaping of `diffill serve` (http_server/schema.py), without
a server: each dialect's fields to a CompletionRequest, every wrong field named."""

from __future__ import annotations

import pytest

from engine.completer import DEFAULT_STEPS, Candidate, CompletionResult, Timings
from http_server import schema
from http_server.schema import BadRequest, infill_call, openai_call


def test_openai_fields_map_onto_the_request() -> None:
    body = {"prompt": "p", "suffix": "s", "max_tokens": 40, "temperature": 0.2, "n": 2}
    call = openai_call({**body, "stop": "\n", "steps": 2, "mode": "ar"}, max_tokens_cap=32)
    r = call.request
    assert (r.prefix, r.suffix, r.max_tokens, r.temperature) == ("p", "s", 32, 0.2)
    assert (r.num_candidates, r.max_steps, r.mode, r.stop_at_newline) == (2, 2, "ar", True)
    assert call.stop == ("\n",) and call.n == 2


def test_defaults_and_ignored_fields() -> None:
    call = openai_call({"prompt": "p", "suffix": None, "logit_bias": {}, "echo": False}, 256)
    r = call.request
    assert (r.suffix, r.max_tokens, r.max_steps, r.temperature) == ("", 16, DEFAULT_STEPS, 0.0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": 1}, "prompt"),
        ({"prompt": "p", "max_tokens": "8"}, "max_tokens"),
        ({"prompt": "p", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "p", "max_tokens": True}, "max_tokens"),
        ({"prompt": "p", "temperature": -1}, "temperature"),
        ({"prompt": "p", "n": 65}, "n"),
        ({"prompt": "p", "stream": "yes"}, "stream"),
        ({"prompt": "p", "stop": [1]}, "stop"),
        ({"prompt": "p", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": "p", "mode": "beam"}, "mode"),
        ({"prompt": "p", "steps": 0}, "steps"),
    ],
)
def test_a_wrong_field_is_named(body: dict, field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        openai_call(body, 256)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"\xff"])
def test_a_body_that_is_not_a_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(BadRequest, match=r"^body: "):
        schema.parse_json(raw)


def test_infill_joins_prefix_and_prompt_and_puts_extra_chunks_first() -> None:
    body = {
        "input_prefix": "def f():\n",
        "prompt": "    return ",
        "input_suffix": "\n",
        "input_extra": [{"filename": "a.py", "text": "X = 1", "time": 3}],
        "n_predict": 500,
        "t_max_predict_ms": 250,
    }
    r = infill_call(body, max_tokens_cap=128).request
    assert r.prefix == "# a.py\nX = 1\n\ndef f():\n    return " and r.suffix == "\n"
    assert r.extra == (("a.py", "X = 1"),) and r.prefix[r.extra_chars :] == "def f():\n    return "
    assert r.max_tokens == 128


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input_extra": [{"filename": "a"}]}, "input_extra"),
        ({"input_extra": "x"}, "input_extra"),
        ({"n_predict": -2}, "n_predict"),
        ({"t_max_predict_ms": "soon"}, "t_max_predict_ms"),
        ({"response_fields": "content"}, "response_fields"),
    ],
)
def test_infill_names_a_wrong_field(body: dict, field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        infill_call({"input_prefix": "x", **body}, 128)
    assert caught.value.field == field


def test_infill_response_fields_are_flattened_as_llama_server_does() -> None:
    call = infill_call({"input_prefix": "x", "response_fields": ["content", "timings/prompt_n"]}, 8)
    result = CompletionResult((Candidate("y\nz", 3, 2),), Timings(9.0, 4.0, 5.0, 12, 10))
    assert schema.infill_answer(call, result) == {"content": "y\nz", "timings/prompt_n": 12}
    full = schema.infill_answer(infill_call({"input_prefix": "x"}, 8), result)
    assert full["tokens_cached"] == 10 and full["timings"]["predicted_per_token_ms"] == 5.0 / 3


def test_stop_cut_and_finish_reason() -> None:
    call = openai_call({"prompt": "p", "stop": ["END"], "max_tokens": 3}, 256)
    result = CompletionResult((Candidate("abcENDx", 3, 1),), Timings(1.0, 0.5, 0.5, 4))
    assert schema.choices(call, result)[0] | {"index": 0} == {
        "index": 0, "text": "abc", "logprobs": None, "finish_reason": "stop"
    }  # fmt: skip
    longest = CompletionResult((Candidate("abc", 3, 1),), Timings(1.0, 0.5, 0.5, 4))
    assert schema.choices(call, longest)[0]["finish_reason"] == "length"
