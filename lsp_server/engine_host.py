"""The completer's life cycle: loading in the background, ready, or failed with a reason.

The first load starts after `initialized`; until it finishes, automatic requests get an empty
answer at once and invoked ones wait for it, up to the `loadWaitMs` setting. A failure keeps
its one-line reason for `diffill/status` and the user's message, and the server stays up.
A reload (the settings or the model folder changed) builds the new completer while the old
one answers; a failed reload keeps the old one serving, with the reason in `error`.

The completer is the embedded model or an online backend (engine/online/), and with
`backend.fallback: "embedded"` the embedded model is loaded beside the online one to answer
when it fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.completer import AsyncCompleter, Completer
from engine.errors import DiffillError
from lsp_server.config import BackendSettings, Settings


@dataclass(frozen=True)
class EngineSource:
    """The settings a completer is built from: a change to any of them reloads it."""

    path: str = ""
    runtime: str = "auto"
    backend: BackendSettings = field(default_factory=BackendSettings)
    offline: bool = True
    memory_budget_mb: int = 0

    @classmethod
    def of(cls, settings: Settings) -> EngineSource:
        m = settings.model
        return cls(m.path, m.runtime, settings.backend, settings.is_offline, m.memory_budget_mb)

    @property
    def label(self) -> str:
        if self.backend.online:
            return f"{self.backend.kind} backend"
        return f"model {self.path or '(embedded)'}"


def open_model(source: EngineSource) -> Completer:
    """Load the completer (slow: runs on a loader thread). An empty path setting means the
    engine's default: $DIFFILL_MODEL, else the embedded model in models/."""
    from engine.loading import open_completer

    folder = Path(source.path).expanduser() if source.path else None
    return open_completer(
        folder,
        runtime=source.runtime,  # type: ignore[arg-type]
        memory_budget_mb=source.memory_budget_mb,
    )


def open_backend(source: EngineSource) -> AsyncCompleter:
    """The online completer; DiffillError when offline mode forbids it or a setting is wrong.
    Opens no connection: the first completion does."""
    kind = source.backend.kind
    if source.offline:
        raise DiffillError(
            f"offline is on, so backend.kind {kind!r} is refused (it would send code over "
            "the network); set offline to false to use it"
        )
    from engine.online.client import OnlineCompleter, endpoint

    b = source.backend
    target = endpoint(
        kind, b.url, b.model, b.api_key_env, b.timeout_ms / 1000, b.connect_timeout_ms / 1000
    )
    return OnlineCompleter(target)


def open_engines(source: EngineSource) -> tuple[Completer | AsyncCompleter, Completer | None]:
    """The completer for `source` and the embedded fallback when one is asked for."""
    if not source.backend.online:
        return open_model(source), None
    online = open_backend(source)
    wanted = source.backend.fallback == "embedded"
    return online, open_model(source) if wanted else None


@dataclass
class EngineHost:
    state: str = "loading"  # loading | ready | failed
    completer: Completer | AsyncCompleter | None = None
    fallback: Completer | None = None  # the embedded model, when an online backend fails
    error: str | None = None
    source: EngineSource = field(default_factory=EngineSource)  # the one asked for last
    loads: int = 0  # completers made ready, reloads included
    load_failures: int = 0
    said: str | None = None  # the last failure reason shown to the user

    def loading(self, source: EngineSource) -> None:
        """A first load, or one after a failure: nothing answers until it ends."""
        self.state, self.completer, self.fallback = "loading", None, None
        self.error, self.source = None, source

    def ready(self, completer: Completer | AsyncCompleter, fallback: Completer | None) -> None:
        self.state, self.completer, self.fallback, self.error = "ready", completer, fallback, None
        self.loads, self.said = self.loads + 1, None

    def failed(self, reason: str) -> bool:
        """Record a failed load; True when the reason is news to the user. With a completer
        serving, it stays: a broken new model never replaces a working one."""
        if self.completer is None:
            self.state = "failed"
            self.error = reason
        else:
            self.error = f"kept the previous model: {reason}"
        news, self.said = reason != self.said, reason
        self.load_failures += 1
        return news

    def describe(self) -> dict[str, object]:
        return dict(self.completer.describe()) if self.completer is not None else {}
