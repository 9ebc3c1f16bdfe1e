"""Request bodies of the three FIM dialects to a `CompletionRequest`, and results back to
each dialect's answer. Plain functions: every wrong field is a `BadRequest` naming it.

Fields a dialect defines that diffill has no use for (`top_k`, `samplers`, `cache_prompt`,
`model`, ...) are ignored, as unknown fields are. diffill's own knobs ride along under their
own names: `steps` (denoising steps per 16-token block) and `mode` (`diffusion` or `ar`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, get_args

from engine.completer import DEFAULT_STEPS, CompletionRequest, CompletionResult, Mode
from engine.embedded import MAX_CANDIDATES
from engine.errors import DiffillError

OPENAI_DEFAULT_MAX_TOKENS = 16  # OpenAI's documented default
MAX_STOPS = 4  # OpenAI's limit on stop sequences


class BadRequest(DiffillError):
    """A body the server cannot use; `field` is the first offending one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class FimCall:
    """One parsed request: what the completer is asked, and how the answer is shaped."""

    request: CompletionRequest
    stop: tuple[str, ...] = ()
    n: int = 1
    stream: bool = False
    model: str = ""
    response_fields: tuple[str, ...] = ()  # /infill: only these (paths like timings/prompt_n)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("body", f"not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest("body", f"must be a JSON object, got {type(body).__name__}")
    return body


def openai_call(body: dict[str, Any], max_tokens_cap: int) -> FimCall:
    """`/v1/completions` and `/v1/fim/completions`: prompt, suffix, max_tokens, temperature,
    stop, n, stream."""
    get = _Fields(body)
    n = get.integer("n", 1, 1, MAX_CANDIDATES)
    request = _request(
        get,
        prefix=get.text("prompt", ""),
        suffix=get.text("suffix", ""),
        max_tokens=min(get.integer("max_tokens", OPENAI_DEFAULT_MAX_TOKENS, 1), max_tokens_cap),
        num_candidates=n,
    )
    stop = get.stops("stop")
    call = FimCall(request, stop, n, get.boolean("stream", False), get.text("model", ""))
    return _with_newline_stop(call)


def infill_call(body: dict[str, Any], max_tokens_cap: int) -> FimCall:
    """llama.cpp's `/infill` as llama.vim sends it: input_prefix, the current line up to the
    cursor in `prompt`, input_suffix, input_extra chunks, n_predict (-1: no limit but the
    cap; 0: nothing to write), response_fields, t_max_predict_ms (a time limit on denoising:
    the answer is what was committed when it passed). `t_max_prompt_ms` is accepted; the
    context is always encoded whole."""
    get = _Fields(body)
    max_predict_ms = get.number("t_max_predict_ms", 0.0, 0.0)
    get.number("t_max_prompt_ms", 0.0, 0.0)
    extra = get.chunks("input_extra")
    rendered = "".join(f"# {path}\n{text}\n\n" for path, text in extra)
    prefix = rendered + get.text("input_prefix", "") + get.text("prompt", "")
    n_predict = get.integer("n_predict", -1, -1)
    request = _request(
        get,
        prefix=prefix,
        suffix=get.text("input_suffix", ""),
        max_tokens=max_tokens_cap if n_predict < 0 else max(1, min(n_predict, max_tokens_cap)),
        extra=extra,
        extra_chars=len(rendered),
        max_predict_ms=max_predict_ms,
    )
    fields = tuple(get.strings("response_fields"))
    call = FimCall(request, get.stops("stop"), 1, False, "", fields)
    return _with_newline_stop(replace(call, n=0 if n_predict == 0 else 1))


def _request(get: _Fields, **fields: Any) -> CompletionRequest:
    mode = get.text("mode", "diffusion")
    if mode not in get_args(Mode):
        raise BadRequest("mode", f"must be one of {', '.join(get_args(Mode))}, got {mode!r}")
    return CompletionRequest(
        **fields,
        mode=mode,  # type: ignore[arg-type]
        max_steps=get.integer("steps", DEFAULT_STEPS, 1, 1024),
        temperature=get.number("temperature", 0.0, 0.0, 2.0),
        seed=get.integer("seed", 0, 0),
    )


def _with_newline_stop(call: FimCall) -> FimCall:
    """A stop at the first line break lets the engine stop denoising there too."""
    if "\n" in call.stop:
        return replace(call, request=replace(call.request, stop_at_newline=True))
    return call


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """The text up to the first stop sequence (excluded), and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def choices(call: FimCall, result: CompletionResult) -> list[dict[str, Any]]:
    """OpenAI choices: one per distinct candidate (the engine drops repeats)."""
    found = []
    for index, candidate in enumerate(result.candidates[: call.n]):
        text, stopped = cut_at_stop(candidate.text, call.stop)
        full = candidate.tokens >= call.request.max_tokens and not stopped
        found.append({"index": index, "text": text, "logprobs": None, "finish_reason": _why(full)})
    return found


def _why(full: bool) -> str:
    return "length" if full else "stop"


def openai_answer(call: FimCall, result: CompletionResult, model: str) -> dict[str, Any]:
    generated = sum(c.tokens for c in result.candidates[: call.n])
    context = result.timings.context_tokens
    return {
        "id": f"cmpl-{time.time_ns():x}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices(call, result),
        "usage": {
            "prompt_tokens": context,
            "completion_tokens": generated,
            "total_tokens": context + generated,
        },
    }


def openai_stream(call: FimCall, result: CompletionResult, model: str) -> list[str]:
    """Server-sent events: each choice's text in one chunk (a diffusion block arrives whole),
    then its finish reason, then `[DONE]`."""
    base = {"id": f"cmpl-{time.time_ns():x}", "object": "text_completion", "model": model}
    base["created"] = int(time.time())
    events = []
    for choice in choices(call, result):
        reason = choice.pop("finish_reason")
        events.append({**base, "choices": [{**choice, "finish_reason": None}]})
        events.append({**base, "choices": [{**choice, "text": "", "finish_reason": reason}]})
    return [f"data: {json.dumps(event)}\n\n" for event in events] + ["data: [DONE]\n\n"]


def infill_answer(call: FimCall, result: CompletionResult | None) -> dict[str, Any]:
    """llama-server's /infill answer; with response_fields, only those, flattened to their
    paths as llama-server does it (llama.vim reads `timings/predicted_n`). `stop_type` is
    llama-server's: `word` (a stop sequence), `limit` (n_predict or t_max_predict_ms), `eos`."""
    text, stopped = cut_at_stop(result.text, call.stop) if result else ("", False)
    t = result.timings if result else None
    predicted = result.candidates[0].tokens if result and result.candidates else 0
    limited = bool(t and t.out_of_time) or predicted >= call.request.max_tokens
    answer = {
        "content": text,
        "stop": True,
        "stop_type": "word" if stopped else "limit" if limited else "eos",
        "tokens_cached": t.reused_tokens if t else 0,
        "tokens_predicted": predicted,
        "truncated": False,
        "timings": _infill_timings(t.encode_ms if t else 0.0, t.context_tokens if t else 0)
        | _infill_timings(t.denoise_ms if t else 0.0, predicted, "predicted"),
    }
    if not call.response_fields:
        return answer
    return {path: _at(answer, path) for path in call.response_fields if _at(answer, path) != ...}


def _infill_timings(ms: float, count: int, name: str = "prompt") -> dict[str, Any]:
    return {
        f"{name}_n": count,
        f"{name}_ms": ms,
        f"{name}_per_token_ms": ms / count if count else 0.0,
        f"{name}_per_second": count * 1000 / ms if ms else 0.0,
    }


def _at(answer: dict[str, Any], path: str) -> Any:
    value: Any = answer
    for key in path.split("/"):
        if not isinstance(value, dict) or key not in value:
            return ...
        value = value[key]
    return value


class _Fields:
    """Typed reads of a body's fields; each wrong one is a BadRequest naming it."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def _read(self, name: str, default: Any, ok: Callable[[Any], bool], kind: str) -> Any:
        value = self.body.get(name, default)
        if value is None:
            return default
        if not ok(value):
            raise BadRequest(name, f"must be {kind}, got {json.dumps(value)[:60]}")
        return value

    def text(self, name: str, default: str) -> str:
        return self._read(name, default, lambda v: isinstance(v, str), "a string")

    def boolean(self, name: str, default: bool) -> bool:
        return self._read(name, default, lambda v: isinstance(v, bool), "true or false")

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        top = "" if high is None else f"..{high}"
        return self._read(
            name,
            default,
            lambda v: _is_int(v) and v >= low and (high is None or v <= high),
            f"an integer {low}{top}" if top else f"an integer >= {low}",
        )

    def number(self, name: str, default: float, low: float, high: float | None = None) -> float:
        top = float("inf") if high is None else high
        kind = f"a number {low:g}..{high:g}" if high is not None else f"a number >= {low:g}"
        return float(self._read(name, default, lambda v: _is_number(v) and low <= v <= top, kind))

    def strings(self, name: str) -> list[str]:
        def ok(value: Any) -> bool:
            return isinstance(value, list) and all(isinstance(s, str) for s in value)

        return self._read(name, [], ok, "a list of strings")

    def stops(self, name: str) -> tuple[str, ...]:
        value = self.body.get(name)
        stops = [value] if isinstance(value, str) else self.strings(name)
        if len(stops) > MAX_STOPS:
            raise BadRequest(name, f"at most {MAX_STOPS} stop sequences, got {len(stops)}")
        return tuple(s for s in stops if s)

    def chunks(self, name: str) -> tuple[tuple[str, str], ...]:
        def ok(value: Any) -> bool:
            return isinstance(value, list) and all(
                isinstance(c, dict)
                and isinstance(c.get("text"), str)
                and isinstance(c.get("filename", ""), str)
                for c in value
            )

        found = self._read(name, [], ok, "a list of {filename, text} objects")
        return tuple((c.get("filename", ""), c["text"]) for c in found)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
