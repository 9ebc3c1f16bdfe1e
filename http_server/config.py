"""Every setting of `diffill serve` in one typed place, with its default and its check."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InputError

DEFAULT_PORT = 8012  # llama.vim's default endpoint (http://127.0.0.1:8012/infill)
MAX_BODY_BYTES = 4 * 1024 * 1024
# The object store of the Ray head `diffill serve --ray` starts: requests and answers are a few
# KB, and Ray's default (30% of memory) would reserve gigabytes of shared memory for nothing.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class RayConfig:
    """`diffill serve --ray`: the model runs in Ray Serve replicas, autoscaled between
    `min_replicas` and `max_replicas` on the requests each one has running."""

    address: str | None = None  # None: a local head in this process; else ray.init's address
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 2.0  # the autoscaler adds replicas above this per replica
    replica_cpus: float = 1.0  # Ray CPUs each model replica reserves
    retries: int = 2  # a request whose replica dies is sent again, this many times at most

    def __post_init__(self) -> None:
        target, cpus = self.target_ongoing_requests, self.replica_cpus
        _check(
            (self.min_replicas < 1, f"min replicas must be >= 1, got {self.min_replicas}"),
            (
                self.max_replicas < self.min_replicas,
                f"max replicas {self.max_replicas} is under min replicas {self.min_replicas}",
            ),
            (target <= 0, f"target ongoing requests must be > 0, got {target}"),
            (cpus <= 0, f"replica CPUs must be > 0, got {cpus}"),
            (self.retries < 0, f"retries must be >= 0, got {self.retries}"),
        )


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback: nothing else on the network can reach it unless asked
    port: int = DEFAULT_PORT
    model: Path | None = None  # None: the engine's default model
    runtime: str = "auto"
    threads: int = 2  # runtime threads; the model thread is the only caller
    api_key: str | None = field(default=None, repr=False)  # never logged
    max_body_bytes: int = MAX_BODY_BYTES
    max_concurrency: int = 64  # requests inside the model at once (batched together)
    max_queue: int = 256  # requests waiting for a place; beyond that 429
    # Rows per batched call; 1 runs no batching. 8 rather than more: the padded caches of 16
    # rows of different lengths outgrow the CPU's caches (`diffill bench serve` prices 8).
    max_batch: int = 8
    batch_wait_ms: float = 2.0  # how long the model thread waits for stragglers
    max_tokens_cap: int = 256  # a request's max_tokens / n_predict is cut to this
    graceful_shutdown_s: float = 30.0  # SIGTERM: in-flight requests get this long to finish
    ray: RayConfig | None = None  # None: one process; else Ray Serve replicas

    def __post_init__(self) -> None:
        _check(
            (not 0 <= self.port <= 65535, f"port {self.port} is not 0..65535"),
            (self.threads < 1, f"threads must be >= 1, got {self.threads}"),
            (self.max_body_bytes < 1024, f"max body {self.max_body_bytes} bytes is under 1 KiB"),
            (self.max_concurrency < 1, f"max concurrency must be >= 1, got {self.max_concurrency}"),
            (self.max_queue < 0, f"max queue must be >= 0, got {self.max_queue}"),
            (not 1 <= self.max_batch <= 64, f"max batch must be 1..64, got {self.max_batch}"),
            (self.batch_wait_ms < 0, f"batch wait must be >= 0 ms, got {self.batch_wait_ms}"),
            (self.max_tokens_cap < 1, f"max tokens cap must be >= 1, got {self.max_tokens_cap}"),
            (self.api_key == "", "the API key is empty"),
        )

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def _check(*problems: tuple[bool, str]) -> None:
    """InputError with the message of the first problem that holds."""
    for failed, message in problems:
        if failed:
            raise InputError(message)


def api_key_from_env(name: str | None) -> str | None:
    """The key in environment variable `name`; InputError when it is named but unset."""
    if not name:
        return None
    key = os.environ.get(name, "")
    if not key:
        raise InputError(f"--api-key-env names {name}, which is not set or empty")
    return key
