"""`diffill serve`: the options, checked into a `ServeConfig`, then http_server/runner.py (one
process) or http_server/ray_serve.py (`--ray`: Ray Serve replicas)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.allocator import fix_mmap_threshold
from engine.errors import InputError
from engine.loading import RUNTIMES
from http_server.config import (
    DEFAULT_PORT,
    MAX_BODY_BYTES,
    RayConfig,
    ServeConfig,
    api_key_from_env,
)


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
    ray = parser.add_argument_group("Ray Serve (--ray; pip install 'diffill[ray]')")
    r = RayConfig()
    ray.add_argument("--ray", action="store_true", help="run the model in Ray Serve replicas")
    ray.add_argument("--ray-address", default=None, help="a running cluster (default: local head)")
    ray.add_argument("--replicas", type=int, default=None, help="a fixed number of replicas")
    ray.add_argument("--min-replicas", type=int, default=None, help=f"default {r.min_replicas}")
    ray.add_argument("--max-replicas", type=int, default=None, help="default: --min-replicas")
    ray.add_argument("--target-ongoing-requests", type=float, default=r.target_ongoing_requests)
    ray.add_argument("--replica-cpus", type=float, default=r.replica_cpus)
    ray.add_argument("--replica-retries", type=int, default=r.retries)


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
        ray=ray_config_from(args),
    )


def ray_config_from(args: argparse.Namespace) -> RayConfig | None:
    sized = (args.min_replicas, args.max_replicas)
    if not args.ray:
        if args.ray_address or any(n is not None for n in (args.replicas, *sized)):
            raise InputError("--ray-address and the replica options need --ray")
        return None
    if args.replicas is not None and any(n is not None for n in sized):
        raise InputError("give --replicas (a fixed number) or --min/--max-replicas, not both")
    low = args.replicas if args.replicas is not None else args.min_replicas
    low = RayConfig.min_replicas if low is None else low
    high = args.replicas if args.replicas is not None else args.max_replicas
    return RayConfig(
        address=args.ray_address,
        min_replicas=low,
        max_replicas=low if high is None else high,
        target_ongoing_requests=args.target_ongoing_requests,
        replica_cpus=args.replica_cpus,
        retries=args.replica_retries,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    fix_mmap_threshold()
    try:
        if config.ray:
            from http_server.ray_serve import serve
        else:
            from http_server.runner import serve
    except ImportError as exc:
        extra = "ray" if config.ray else "serve"
        raise InputError(
            f"diffill serve needs {exc.name}: pip install 'diffill[{extra}]'"
        ) from None
    if not config.loopback and config.api_key is None:
        print(f"diffill serve: warning: listening on {config.host} with no key", file=sys.stderr)
    print(f"diffill serve: http://{config.host}:{config.port}", file=sys.stderr, flush=True)
    serve(config)
    return 0
