"""`openai-fim`: OpenAI's completions endpoint with `suffix`, as vLLM and LM Studio serve it
(https://platform.openai.com/docs/api-reference/completions/create)."""

from __future__ import annotations

from typing import Any

from engine.completer import CompletionRequest
from engine.online.dialect import Dialect, stop_sequences


def body(request: CompletionRequest, model: str) -> dict[str, Any]:
    fields = {
        "prompt": request.prefix,
        "suffix": request.suffix,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stop": stop_sequences(request),
    }
    return {"model": model, **fields} if model else fields


def texts(answer: Any) -> list[str]:
    return [choice["text"] for choice in answer["choices"]]


DIALECT = Dialect("/v1/completions", "http://127.0.0.1:8000", body, texts)
