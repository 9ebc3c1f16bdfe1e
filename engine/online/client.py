"""HTTP for every online kind: one pooled `httpx.AsyncClient` per configured backend, kept
for the server's life so consecutive keystrokes reuse the connection, and every failure
turned into a `BackendError` with one line that says what went wrong and where.

Requests are awaited on the server's event loop; cancelling the awaiting task closes the
connection, which is how llama.cpp, vLLM and Ollama learn to stop generating.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine.completer import Candidate, CompletionRequest, CompletionResult, Timings
from engine.errors import BackendError, InputError
from engine.online import DIALECTS

# The window planner's token estimate for a tokenizer the server cannot see: code runs ~3.4
# characters a token, so 3 over-counts a little and the window never outgrows the budget.
CHARS_PER_TOKEN = 3
DETAIL_CHARS = 200  # of an error body, in the one-line reason
KEEPALIVE = httpx.Limits(max_connections=8, max_keepalive_connections=4, keepalive_expiry=60)


@dataclass(frozen=True)
class Endpoint:
    kind: str
    url: str  # base URL, no trailing slash
    model: str
    api_key: str | None = field(default=None, repr=False)  # never logged, never in status
    key_env: str = ""  # the variable it came from, for messages
    timeout_s: float = 5.0
    connect_timeout_s: float = 1.0


def endpoint(
    kind: str,
    url: str = "",
    model: str = "",
    key_env: str = "",
    timeout_s: float = 5.0,
    connect_timeout_s: float = 1.0,
) -> Endpoint:
    """The endpoint with the kind's defaults filled in and the key read from `key_env`;
    InputError naming the setting that cannot work."""
    if kind not in DIALECTS:
        raise InputError(f"unknown backend kind {kind!r} (known: {', '.join(DIALECTS)})")
    dialect = DIALECTS[kind]
    base = (url or dialect.default_url).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InputError(f"backend.url must start with http:// or https://, got {url!r}")
    model = model or dialect.default_model
    if dialect.needs_model and not model:
        raise InputError(f"backend.model is required for {kind}: the name of a model it serves")
    key = os.environ.get(key_env) if key_env else None
    if key_env and not key:
        raise InputError(f"backend.apiKeyEnv names {key_env}, which is not set for the server")
    return Endpoint(kind, base, model, key, key_env, timeout_s, connect_timeout_s)


def error_detail(response: httpx.Response) -> str:
    """The server's own words about a failed request, on one short line."""
    try:
        error = response.json().get("error", "")
        text = error.get("message", "") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        text = response.text
    line = " ".join(text.split())
    return line[:DETAIL_CHARS] or response.reason_phrase


class OnlineCompleter:
    def __init__(self, target: Endpoint) -> None:
        self.endpoint, self.dialect = target, DIALECTS[target.kind]
        self.where = f"{target.kind} at {target.url}"
        self._client: httpx.AsyncClient | None = None
        self._refused: BackendError | None = None  # a rejected key is not sent again

    async def complete_async(self, request: CompletionRequest) -> CompletionResult:
        if self._refused is not None:
            raise self._refused
        started = time.perf_counter()
        body = self.dialect.body(request, self.endpoint.model)
        try:
            response = await self.client.post(self.dialect.path, json=body)
        except httpx.TimeoutException:
            limit = self.endpoint.timeout_s
            raise BackendError(f"{self.where}: no answer within {limit:g} s") from None
        except httpx.ConnectError as exc:
            raise BackendError(f"{self.where}: cannot connect ({exc})") from None
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.where}: {type(exc).__name__} ({exc})") from None
        texts = self._texts(response)
        elapsed = (time.perf_counter() - started) * 1000
        candidates = tuple(Candidate(t, self.count_tokens(t), 0) for t in dict.fromkeys(texts))
        context = self.count_tokens(request.prefix) + self.count_tokens(request.suffix)
        timings = Timings(total_ms=elapsed, encode_ms=0.0, denoise_ms=0.0, context_tokens=context)
        return CompletionResult(candidates, timings, {"runtime": "http"})

    def _texts(self, response: httpx.Response) -> list[str]:
        status = response.status_code
        if status in (401, 403):
            source = f"the key in ${self.endpoint.key_env}" if self.endpoint.key_env else "no key"
            self._refused = BackendError(
                f"{self.where}: HTTP {status} {error_detail(response)} ({source}; "
                "not retried until the settings change)",
                auth=True,
            )
            raise self._refused
        if status >= 400:
            raise BackendError(f"{self.where}: HTTP {status} {error_detail(response)}")
        try:
            texts = self.dialect.texts(response.json())
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise BackendError(f"{self.where}: malformed answer ({problem})") from None
        if not all(isinstance(text, str) for text in texts):
            raise BackendError(f"{self.where}: malformed answer (a completion is not a string)")
        return texts

    @property
    def client(self) -> httpx.AsyncClient:
        """Made on first use, on the event loop that will use it."""
        if self._client is None:
            headers = {"User-Agent": "diffill"}
            e = self.endpoint
            if e.api_key:
                headers["Authorization"] = f"Bearer {e.api_key}"
            timeout = httpx.Timeout(e.timeout_s, connect=e.connect_timeout_s)
            self._client = httpx.AsyncClient(
                base_url=e.url, headers=headers, timeout=timeout, limits=KEEPALIVE
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def prepare(self, prefix: str, suffix: str) -> None:
        """Nothing to do ahead: the backend keeps its own prompt cache."""

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.endpoint.kind,
            "backend": self.endpoint.kind,
            "url": self.endpoint.url,
            "model": self.endpoint.model or None,
            "runtime": "http",
        }
