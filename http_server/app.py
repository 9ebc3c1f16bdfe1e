"""The ASGI app: thin route handlers over `http_server.schema` (bodies and answers) and
`http_server.host` (the completer), plus one guard in front of every route for the API key,
the body limit and the metrics. Errors are raised where they are found and turned into
answers here, once: 400 naming the field, 401, 413, 429 with Retry-After, 503 while loading.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.completer import CompletionResult
from engine.errors import DiffillError, InputError
from http_server import schema
from http_server.admission import Admission, QueueFull
from http_server.config import ServeConfig
from http_server.host import Host, ModelHost, NotReady
from http_server.metrics import Metrics

RETRY_AFTER_S = 1
OPEN_PATHS = ("/health",)  # answered without the key: load balancers probe it
ROUTES = ("/v1/completions", "/v1/fim/completions", "/infill", "/v1/models", "/health", "/metrics")
REPLICA_HEADER = "x-diffill-replica"  # which Ray Serve replica ran the model (--ray only)


class TooLarge(DiffillError):
    """The body is over the server's limit."""


def build_app(
    config: ServeConfig, make_host: Callable[[ServeConfig, Metrics], Host] = ModelHost
) -> Starlette:
    """The app over `make_host`'s completer: a model in this process (`ModelHost`), or Ray
    Serve replicas (http_server/ray_serve.py)."""
    metrics = Metrics()
    host = make_host(config, metrics)
    admission = Admission(config.max_concurrency, config.max_queue, metrics)

    async def read_json(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > config.max_body_bytes:
            raise TooLarge(f"body of {declared} bytes is over {config.max_body_bytes}")
        raw = bytearray()
        async for part in request.stream():
            raw += part
            if len(raw) > config.max_body_bytes:
                raise TooLarge(f"body is over {config.max_body_bytes} bytes")
        return schema.parse_json(bytes(raw))

    async def complete(call: schema.FimCall):
        async with admission.place():
            return await host.complete(call.request)

    async def completions(request: Request) -> Response:
        call = schema.openai_call(await read_json(request), config.max_tokens_cap)
        result = await complete(call)
        headers = _replica(result)
        if call.stream:
            events = schema.openai_stream(call, result, host.model_name)
            return StreamingResponse(iter(events), media_type="text/event-stream", headers=headers)
        return JSONResponse(schema.openai_answer(call, result, host.model_name), headers=headers)

    async def infill(request: Request) -> Response:
        call = schema.infill_call(await read_json(request), config.max_tokens_cap)
        result = await complete(call) if call.n else None  # n_predict 0: nothing to write
        return JSONResponse(schema.infill_answer(call, result), headers=_replica(result))

    async def models(request: Request) -> Response:
        if host.state != "ready":
            raise NotReady(host.reason)
        card = {"id": host.model_name, "object": "model", "owned_by": "diffill"}
        return JSONResponse({"object": "list", "data": [{**card, "meta": host.describe()}]})

    async def health(request: Request) -> Response:
        if host.state != "ready":
            raise NotReady(host.reason)
        return JSONResponse({"status": "ok"})

    async def show_metrics(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    app = Starlette(
        routes=[
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/fim/completions", completions, methods=["POST"]),
            Route("/infill", infill, methods=["POST"]),
            Route("/v1/models", models),
            Route("/health", health),
            Route("/metrics", show_metrics),
        ],
        exception_handlers={DiffillError: _error_answer},
        lifespan=_lifespan(host),
    )
    app.add_middleware(Guard, api_key=config.api_key, metrics=metrics)
    app.state.host = host
    return app


def _replica(result: CompletionResult | None) -> dict[str, str]:
    replica = result.extra.get("replica") if result else None
    return {REPLICA_HEADER: str(replica)} if replica else {}


def _lifespan(host: Host):
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette):
        host.start_loading()
        yield
        host.close()  # after uvicorn let the requests in flight finish

    return lifespan


def _error_answer(request: Request, exc: Exception) -> Response:
    status, headers = 500, {}
    if isinstance(exc, schema.BadRequest | InputError):
        status = 400
    elif isinstance(exc, TooLarge):
        status = 413
    elif isinstance(exc, QueueFull | NotReady):
        status = 429 if isinstance(exc, QueueFull) else 503
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    error = {"message": str(exc), "type": type(exc).__name__, "param": getattr(exc, "field", None)}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


class Guard:
    """In front of every route: the bearer key (when one is set) and the request metrics."""

    def __init__(self, app: ASGIApp, api_key: str | None, metrics: Metrics) -> None:
        self.app, self.api_key, self.metrics = app, api_key, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        if self._authorized(scope):
            await self.app(scope, receive, send_status)
        else:
            await _unauthorized(scope, receive, send_status)
        route = scope["path"] if scope["path"] in ROUTES else "other"
        self.metrics.request_done(route, status[0], time.perf_counter() - started)

    def _authorized(self, scope: Scope) -> bool:
        if self.api_key is None or scope["path"] in OPEN_PATHS:
            return True
        headers = dict(scope["headers"])
        given = headers.get(b"authorization", b"").decode("latin-1")
        return hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode())


async def _unauthorized(scope: Scope, receive: Receive, send: Send) -> None:
    error = {"message": "missing or wrong Authorization: Bearer key", "type": "Unauthorized"}
    answer = JSONResponse({"error": error}, 401, {"WWW-Authenticate": "Bearer"})
    await answer(scope, receive, send)
