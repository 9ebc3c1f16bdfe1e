"""A bare JSON-RPC client over the real `diffill lsp` process's stdio, for the fuzz and soak
runs: it sends any bytes (invalid params included, which pytest-lsp's typed client refuses to
build) and keeps every message the server writes, so a test can say which request was never
answered."""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import threading
import time
from typing import Any

from lsp_harness import DIFFILL

ANSWER_WAIT_S = 120.0  # "never answered", not "too slow": far beyond any real answer here


class ServerDied(AssertionError):
    pass


class Unanswered(AssertionError):
    pass


class StdioServer:
    """One `diffill lsp` process; `request` returns the whole response message (result or
    error), `notify` sends and returns at once. Server-to-client requests are answered null."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*DIFFILL, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self._ids = itertools.count(1)
        self._answers: dict[Any, queue.Queue] = {}
        self._lock, self._write_lock = threading.Lock(), threading.Lock()
        self.notifications: queue.Queue[dict] = queue.Queue()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.send_bytes(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def send_bytes(self, data: bytes) -> None:
        if self.process.poll() is not None:
            raise ServerDied(f"the server exited with {self.process.returncode}: {self.log()}")
        with self._write_lock:  # the reader thread answers the server's own requests
            self.process.stdin.write(data)
            self.process.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request_later(self, method: str, params: Any, id_: Any = None) -> Any:
        """Send a request; `answer(id)` waits for its response."""
        id_ = next(self._ids) if id_ is None else id_
        with self._lock:
            self._answers.setdefault(_key(id_), queue.Queue())
        message = {"id": id_, "method": method}
        self.send(message if params is ... else {**message, "params": params})
        return id_

    def answer(self, id_: Any) -> dict:
        with self._lock:
            box = self._answers.setdefault(_key(id_), queue.Queue())
        try:
            found = box.get(timeout=ANSWER_WAIT_S)
        except queue.Empty:
            alive = self.process.poll() is None
            raise Unanswered(f"request {id_!r} was never answered (alive: {alive})") from None
        with self._lock:
            del self._answers[_key(id_)]
        return found

    def request(self, method: str, params: Any) -> dict:
        return self.answer(self.request_later(method, params))

    def result(self, method: str, params: Any) -> Any:
        answer = self.request(method, params)
        if "error" in answer:
            raise AssertionError(f"{method} failed: {answer['error']}")
        return answer["result"]

    def initialize(
        self, options: dict, general: dict | None = None, root_uri: str | None = None
    ) -> dict:
        capabilities = {
            "textDocument": {"inlineCompletion": {}, "completion": {}},
            "window": {"workDoneProgress": False},
            "general": general or {},
        }
        params = {"processId": None, "rootUri": root_uri, "capabilities": capabilities}
        result = self.result("initialize", {**params, "initializationOptions": options})
        self.capabilities = result["capabilities"]
        self.notify("initialized", {})
        return result

    def wait_ready(self) -> dict:
        """Until `diffill/status` says the model is no longer loading."""
        while (state := self.result("diffill/status", {}))["state"] == "loading":
            time.sleep(0.05)
        return state

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> int:
        """shutdown and exit; the exit code (killed after ANSWER_WAIT_S if it hangs)."""
        if self.alive():
            try:
                self.request("shutdown", None)
                self.notify("exit", None)
            except (ServerDied, Unanswered, BrokenPipeError):
                pass
        try:
            return self.process.wait(ANSWER_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                stream.close()

    def log(self) -> str:
        return b"".join(self.stderr).decode(errors="replace")[-4000:]

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line or length is None:
                return
            self._deliver(json.loads(stream.read(length)))

    def _deliver(self, message: dict) -> None:
        if "method" in message and "id" in message:
            self.send({"id": message["id"], "result": None})  # progress create, etc.
        elif "method" in message:
            self.notifications.put(message)
        else:
            with self._lock:
                box = self._answers.setdefault(_key(message.get("id")), queue.Queue())
            box.put(message)

    def _drain_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)


def _key(id_: Any) -> str:
    """Answers by id; ids may be any JSON (a server answers an object id too)."""
    return json.dumps(id_, sort_keys=True)
