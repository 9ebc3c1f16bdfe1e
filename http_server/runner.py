"""The app on uvicorn. SIGTERM and Ctrl-C stop taking connections and let the requests in
flight, queued ones included, finish (up to `graceful_shutdown_s`) before the model stops."""

from __future__ import annotations

import uvicorn

from http_server.app import build_app
from http_server.config import ServeConfig


class _Server(uvicorn.Server):
    """uvicorn raises the signal again after its graceful shutdown, so the process would end
    as killed by SIGTERM; a shutdown that let every request finish exits with 0 instead."""

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve(config: ServeConfig) -> None:
    app = build_app(config)
    settings = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        timeout_graceful_shutdown=config.graceful_shutdown_s,
    )
    _Server(settings).run()
