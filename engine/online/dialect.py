"""What one online kind differs in: where it is, what it is sent, where the text comes back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.completer import CompletionRequest

Body = Callable[[CompletionRequest, str], dict[str, Any]]  # (request, model name) -> JSON


@dataclass(frozen=True)
class Dialect:
    path: str  # POSTed to, under the base URL
    default_url: str  # the base URL when `backend.url` is empty
    body: Body
    # The answer's JSON to completion texts; raises KeyError, IndexError or TypeError when
    # the answer does not have the dialect's shape.
    texts: Callable[[Any], list[str]]
    default_model: str = ""  # empty: the field is left out and the server uses its own model
    needs_model: bool = False


def stop_sequences(request: CompletionRequest) -> list[str]:
    """Where generation stops, from the extent the server decided: mid-line, the line's end;
    otherwise a block, which two blank lines end (post-processing still cuts at the dedent).
    Never more than four: OpenAI-compatible servers reject longer lists."""
    return ["\n"] if request.stop_at_newline else ["\n\n\n"]
