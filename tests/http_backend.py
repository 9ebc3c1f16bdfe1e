"""A real HTTP server on loopback standing in for Mercury's API and Ollama in the online
tests: it records every request and answers with what the test says, so the request and
answer formats are pinned against the backends' public documentation; it can also hold a
request open until the client hangs up, which is how a test sees an aborted request.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD = object()  # answer: keep the request open until the client closes the connection


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any
    hung_up: threading.Event = field(default_factory=threading.Event)


Answer = Callable[[Seen], tuple[int, Any]]  # (status, JSON value, raw bytes, or HOLD)


class Backend:
    def __init__(self, answer: Answer) -> None:
        self.answer, self.seen = answer, []
        self.arrived = threading.Semaphore(0)  # released once per request received
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Backend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def _handler(backend: Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server naming
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen = Seen(self.path, dict(self.headers), json.loads(raw))
            backend.seen.append(seen)
            backend.arrived.release()
            status, payload = backend.answer(seen)
            if payload is HOLD:
                self._wait_for_hang_up(seen)
                return
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _wait_for_hang_up(self, seen: Seen) -> None:
            while not backend.stopping.is_set():
                readable, _, _ = select.select([self.connection], [], [], 0.05)
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    seen.hung_up.set()
                    return

        def log_message(self, *args: object) -> None:
            """Quiet: pytest shows the test's own output."""

    return Handler
