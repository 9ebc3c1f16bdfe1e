"""`diffill serve --ray`: the same app on Ray Serve, as two deployments.

- `DiffillIngress`, one replica: the app of http_server/app.py (the routes, the key, the
  limits, the metrics), whose completer is a handle on the model deployment (`RayHost`).
- `DiffillModel`: `--replicas N` of them, or between `--min-replicas` and `--max-replicas`,
  autoscaled on `--target-ongoing-requests` per replica. Each loads the model (a
  `ModelHost`, step-batched) before Ray routes to it, and names itself in every result.

A request whose model replica dies while running it is sent again (`--replica-retries`),
and Ray routes it to a live one: a completion is a function of its request, so the second
run answers what the first would have. http_server/ray_app.py builds the same application
for `serve run` and KubeRay.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from dataclasses import replace
from typing import Any

import ray
from ray import serve as ray_serve
from ray.exceptions import RayActorError, RayError, RayTaskError
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from starlette.applications import Starlette

from engine.allocator import fix_mmap_threshold
from engine.completer import CompletionRequest, CompletionResult
from engine.errors import DiffillError
from http_server.app import build_app
from http_server.config import LOCAL_OBJECT_STORE_BYTES, RayConfig, ServeConfig
from http_server.host import ModelHost, NotReady, State
from http_server.metrics import Metrics

APP = "diffill"
QUIET = {"log_level": "WARNING", "enable_access_log": False}  # as uvicorn's in `diffill serve`
MODEL = "DiffillModel"
INGRESS = "DiffillIngress"


class ModelReplica:
    """One model replica: a `ModelHost` loaded before Ray sends it anything."""

    def __init__(self, config: ServeConfig) -> None:
        fix_mmap_threshold()  # a Ray worker process of its own
        self.host = ModelHost(config, Metrics())
        self.host.load()
        if self.host.state != "ready":
            raise NotReady(self.host.reason)
        self.replica = ray_serve.get_replica_context().replica_id.unique_id

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        result = await self.host.complete(request)
        return replace(result, extra={**result.extra, "replica": self.replica})

    async def describe(self) -> dict[str, object]:
        return self.host.describe()

    def __del__(self) -> None:
        self.host.close()


class RayHost:
    """The ingress's completer: calls on the model deployment, sent again when the replica
    running one dies."""

    def __init__(self, config: ServeConfig, metrics: Metrics, model: DeploymentHandle) -> None:
        self.config, self.metrics, self.model = config, metrics, model
        self.retries = (config.ray or RayConfig()).retries
        self.state: State = "loading"
        self.reason = "waiting for a model replica"
        self.info: dict[str, object] = {}

    def start_loading(self) -> None:
        self._asking = asyncio.get_running_loop().create_task(self._ask())

    async def _ask(self) -> None:
        try:
            self.info = await self.model.describe.remote()
        except RayError as exc:
            self.state, self.reason = "failed", f"the model deployment failed: {exc}"
            return
        self.state = "ready"

    def describe(self) -> dict[str, object]:
        ray_config = self.config.ray or RayConfig()
        scale = {"min": ray_config.min_replicas, "max": ray_config.max_replicas}
        return {**self.info, "replicas": scale}

    @property
    def model_name(self) -> str:
        return str(self.info.get("name", "diffill"))

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        for attempt in range(self.retries + 1):
            try:
                return await self.model.complete.remote(request)
            except RayActorError as exc:
                lost = exc
                if attempt < self.retries:
                    self.metrics.retried()
            except RayTaskError as exc:  # the replica raised: the app answers its own errors
                if isinstance(exc.cause, DiffillError):
                    raise exc.cause from None
                raise
        raise NotReady(f"the model replica died on each of {self.retries + 1} tries: {lost}")

    def close(self) -> None:
        """Nothing to stop here: Ray stops the model replicas."""


def application(config: ServeConfig) -> Application:
    """The two deployments, bound: `ray_serve.run` deploys them, `serve run` imports them."""
    ray_config = config.ray or RayConfig()
    model = ray_serve.deployment(
        ModelReplica,
        name=MODEL,
        ray_actor_options={"num_cpus": ray_config.replica_cpus},
        max_ongoing_requests=config.max_concurrency,
        graceful_shutdown_timeout_s=config.graceful_shutdown_s,
        logging_config=QUIET,
        **_scaling(ray_config),
    )
    ingress = ray_serve.deployment(
        ray_serve.ingress(_asgi_app(config))(),
        name=INGRESS,
        ray_actor_options={"num_cpus": 0},  # parses and forwards; the replicas compute
        max_ongoing_requests=config.max_concurrency + config.max_queue,
        graceful_shutdown_timeout_s=config.graceful_shutdown_s,
        logging_config=QUIET,
    )
    return ingress.bind(model.bind(config))


def _scaling(ray_config: RayConfig) -> dict[str, Any]:
    if ray_config.max_replicas == ray_config.min_replicas:
        return {"num_replicas": ray_config.min_replicas}
    autoscaling = {
        "min_replicas": ray_config.min_replicas,
        "max_replicas": ray_config.max_replicas,
        "target_ongoing_requests": ray_config.target_ongoing_requests,
    }
    return {"autoscaling_config": autoscaling}


def _asgi_app(config: ServeConfig):
    """The ingress replica's app, built on the replica (Ray calls this there)."""

    def build() -> Starlette:
        app_name = ray_serve.get_replica_context().app_name
        model = ray_serve.get_deployment_handle(MODEL, app_name=app_name)
        return build_app(config, lambda c, metrics: RayHost(c, metrics, model))

    return build


def serve(config: ServeConfig) -> None:
    """Deploy on the cluster at `--ray-address`, or on a head started here, and serve until
    SIGTERM or Ctrl-C; then the application is deleted (its requests finish first) and a head
    started here is stopped with it."""
    ray_config = config.ray or RayConfig()
    local = ray_config.address is None
    stop = threading.Event()
    try:
        if local:
            ray.init(
                address="local",
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                include_dashboard=False,
            )
        else:
            ray.init(address=ray_config.address)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        ray_serve.start(http_options={"host": config.host, "port": config.port})
        ray_serve.run(application(config), name=APP, route_prefix="/")
        print("diffill serve: ready on Ray Serve", file=sys.stderr, flush=True)
        stop.wait()
    except (RayError, ConnectionError, RuntimeError) as exc:
        raise DiffillError(f"Ray Serve could not run diffill: {exc}") from exc
    finally:
        _leave(local)


def _leave(local: bool) -> None:
    if not ray.is_initialized():
        return
    if local:
        ray_serve.shutdown()
    else:
        ray_serve.delete(APP)
    ray.shutdown()
