"""`ollama`: `POST /api/generate` with `prompt` and `suffix` (https://docs.ollama.com/api/generate).
`raw` is false on purpose: the model's template is what places the suffix around the FIM
tokens; `raw: true` would skip it and the suffix with it."""

from __future__ import annotations

from typing import Any

from engine.completer import CompletionRequest
from engine.online.dialect import Dialect, stop_sequences


def body(request: CompletionRequest, model: str) -> dict[str, Any]:
    options = {
        "num_predict": request.max_tokens,
        "temperature": request.temperature,
        "stop": stop_sequences(request),
    }
    return {
        "model": model,
        "prompt": request.prefix,
        "suffix": request.suffix,
        "raw": False,
        "stream": False,
        "options": options,
    }


def texts(answer: Any) -> list[str]:
    return [answer["response"]]


DIALECT = Dialect("/api/generate", "http://127.0.0.1:11434", body, texts, needs_model=True)
