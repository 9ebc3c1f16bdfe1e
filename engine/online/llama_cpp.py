"""`llama.cpp`: llama-server's `/infill`. Other files' chunks go in `input_extra`, where the
server lays them out with the model's repository tokens, instead of as comments in the prefix
(https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md)."""

from __future__ import annotations

from typing import Any

from engine.completer import CompletionRequest
from engine.online.dialect import Dialect, stop_sequences


def body(request: CompletionRequest, model: str) -> dict[str, Any]:
    fields = {
        "input_prefix": request.prefix[request.extra_chars :],
        "input_suffix": request.suffix,
        "input_extra": [{"filename": path, "text": text} for path, text in request.extra],
        "n_predict": request.max_tokens,
        "temperature": request.temperature,
        "stop": stop_sequences(request),
        "cache_prompt": True,  # typing only appends to the prefix: the server reuses its cache
    }
    return {"model": model, **fields} if model else fields


def texts(answer: Any) -> list[str]:
    return [answer["content"]]


DIALECT = Dialect("/infill", "http://127.0.0.1:8080", body, texts)
