"""`diffill serve`: the options, checked into a `ServeConfig`, then http_server/runner.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.errors import InputError
from engine.loading import RUNTIMES
from http_server.config import DEFAULT_PORT, MAX_BODY_BYTES, ServeConfig, api_key_from_env


def configure(parser: argparse.ArgumentParser) -> None:
    d = ServeConfig()
    add = parser.add_argument
    add("--host", default=d.host, help="address to listen on (default loopback only)")
    add("--port", type=int, default=DEFAULT_PORT)
    add("--model", type=Path, default=None, help="model folder (default: the embedded model)")
    add("--runtime", choices=RUNTIMES, default=d.runtime)
    add("--threads", type=int, default=d.threads, help="CPU threads for the runtime")
    add("--api-key-env", default=None, help="environment variable holding the bearer key")
    add("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    add("--max-concurrency", type=int, default=d.max_concurrency, help="requests in the model")
    add("--max-queue", type=int, default=d.max_queue, help="requests waiting; beyond: 429")
    add("--max-batch", type=int, default=d.max_batch, help="canvas rows a step; 1: no batching")
    add("--batch-wait-ms", type=float, default=d.batch_wait_ms)


def config_from(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(
        host=args.host,
        port=args.port,
        model=args.model,
        runtime=args.runtime,
        threads=args.threads,
        api_key=api_key_from_env(args.api_key_env),
        max_body_bytes=args.max_body_bytes,
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    try:
        from http_server.runner import serve
    except ImportError as exc:
        raise InputError(f"diffill serve needs {exc.name}: pip install 'diffill[serve]'") from None
    if not config.loopback and config.api_key is None:
        print(f"diffill serve: warning: listening on {config.host} with no key", file=sys.stderr)
    print(f"diffill serve: http://{config.host}:{config.port}", file=sys.stderr, flush=True)
    serve(config)
    return 0
