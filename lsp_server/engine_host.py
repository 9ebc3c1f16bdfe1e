"""The completer's life cycle: loading in the background, ready, or failed with a reason.

Loading happens on the model thread after `initialized`; until it finishes, automatic requests
get an empty answer at once and invoked ones wait for it, up to the `loadWaitMs` setting.
A failure keeps its one-line reason for `diffill/status` and the user's message, and the
server stays up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.completer import Completer


def open_model(path_setting: str, runtime: str) -> Completer:
    """Load the completer (slow: runs on the model thread). An empty path setting means the
    engine's default: $DIFFILL_MODEL, else the embedded model in models/."""
    from engine.loading import open_completer

    folder = Path(path_setting).expanduser() if path_setting else None
    return open_completer(folder, runtime=runtime)  # type: ignore[arg-type]


@dataclass
class EngineHost:
    state: str = "loading"  # loading | ready | failed
    completer: Completer | None = None
    error: str | None = None
    source: tuple[str, str] = ("", "")  # (model path setting, runtime) it was loaded from

    def loading(self, source: tuple[str, str]) -> None:
        self.state, self.completer, self.error, self.source = "loading", None, None, source

    def ready(self, completer: Completer) -> None:
        self.state, self.completer, self.error = "ready", completer, None

    def failed(self, reason: str) -> None:
        self.state, self.completer, self.error = "failed", None, reason

    def describe(self) -> dict[str, object]:
        return dict(self.completer.describe()) if self.completer is not None else {}
