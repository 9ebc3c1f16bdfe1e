"""The real `diffill serve` command on a loopback port, for the HTTP tests: started as a
subprocess, ready once /health answers 200, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from lsp_harness import free_port

DIFFILL = str(Path(sys.executable).with_name("diffill"))
READY_TIMEOUT_S = 120  # loading on a busy 2-core machine


@dataclass
class Served:
    url: str
    process: subprocess.Popen

    def metric(self, name: str) -> float:
        """A gauge or counter line of /metrics, by its full name with labels."""
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0


def start(folder: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    port = free_port()
    command = [DIFFILL, "serve", "--model", str(folder), "--port", str(port), *args]
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stderr=subprocess.PIPE, text=True
    )
    return Served(f"http://127.0.0.1:{port}", process)


def wait_ready(served: Served) -> None:
    """Poll /health until 200; fail with the server's stderr if it exits first."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"diffill serve exited: {served.process.stderr.read()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{served.url}/health", timeout=5).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError("diffill serve did not become ready")


def stop(served: Served) -> int:
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
    return served.process.wait(timeout=60)


@contextlib.contextmanager
def serving(folder: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    served = start(folder, *args, env=env)
    try:
        wait_ready(served)
        yield served
    finally:
        stop(served)
