"""Server settings: nested, fully defaulted dataclasses and one camelCase converter.

Settings arrive as JSON from `initializationOptions` and `workspace/didChangeConfiguration`
(either bare or under a top-level "diffill" key), both through `settings_from_json`.
Unknown keys are ignored; a value of the wrong type or out of range is reported as an issue
and its default applies, so a typo never takes the server down. The JSON shape:

    {
      "enable": true,
      "languages": {"markdown": false},        # per-language switch, by LSP languageId
      "alternatives": 3,                       # items for an Invoked (manual) trigger
      "maxFileBytes": 2000000,                 # bigger documents get an error, not a completion
      "extent": "auto",                        # auto (lsp_server/extent.py's rules), line, block
      "loadWaitMs": 10000,                     # an Invoked request waits this long for the model
      "model": {"path": "", "runtime": "auto", "mode": "diffusion",
                "steps": 4, "threshold": 0.9, "maxTokens": 64, "length": "blocks",
                "memoryBudgetMb": 0},                  # a request needing more is refused
      "context": {"budgetTokens": 1024, "suffixShare": 0.25, "gridLines": 32,
                  "prepareDelayMs": 30, "otherFiles": 0.25, "watchWorkspace": true},
      "offline": null,                         # null: true exactly when backend.kind is embedded
      "backend": {"kind": "embedded", "url": "", "model": "", "apiKeyEnv": "",
                  "timeoutMs": 5000, "connectTimeoutMs": 1000, "fallback": "none"}
    }

`model.path` empty means the embedded model in models/; `model.steps` 0 means the canvas size,
and its default is the engine's DEFAULT_STEPS (engine/completer.py says how it was chosen).
`model.memoryBudgetMb` caps what one request's arrays may take; 0 means half the memory free
when the model loads; a request over it is refused with an error naming both figures.
`model.length` picks how the gap's length is decided
(engine/sampler.py); `blocks` stays the default until `diffill eval --lengths` shows
`predicted` better on a model that has skill; `full` always decodes `maxTokens` (the speed of
diffusion against `ar` at equal length, `diffill bench lsp --length full`).
`context.otherFiles` is the share of `budgetTokens` kept for chunks of other files (open
documents, and files changed on disk in the workspace folders while `watchWorkspace` is on);
0 turns other files off.
`backend.kind` other than `embedded` sends the window to an online backend (engine/online/);
`backend.url` and `backend.model` empty mean the kind's defaults, `backend.apiKeyEnv` is the
NAME of the environment variable holding the key (the key itself never appears in settings),
and `backend.fallback: "embedded"` answers with the embedded model when the backend fails.
`offline: true` refuses every kind but `embedded`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_args

from engine.completer import DEFAULT_STEPS, Length, Mode
from engine.loading import RUNTIMES
from engine.online import DIALECTS
from lsp_server.extent import ExtentSetting

BACKEND_KINDS = ("embedded", *DIALECTS)


def _limits(low: float | None = None, high: float | None = None, choices: tuple = ()) -> dict:
    return {"low": low, "high": high, "choices": choices}


@dataclass(frozen=True)
class ModelSettings:
    path: str = ""
    runtime: str = field(default="auto", metadata=_limits(choices=RUNTIMES))
    mode: str = field(default="diffusion", metadata=_limits(choices=get_args(Mode)))
    steps: int = field(default=DEFAULT_STEPS, metadata=_limits(0, 1024))
    threshold: float = field(default=0.9, metadata=_limits(0.0, 1.0))
    max_tokens: int = field(default=64, metadata=_limits(1, 1024))
    length: str = field(default="blocks", metadata=_limits(choices=get_args(Length)))
    memory_budget_mb: int = field(default=0, metadata=_limits(0, 1 << 30))  # 0: half the free

    def sampling(self) -> dict[str, Any]:
        """The CompletionRequest fields these settings decide (choices checked on load)."""
        return {
            "mode": self.mode,
            "max_steps": self.steps or None,
            "threshold": self.threshold,
            "length": self.length,
        }


@dataclass(frozen=True)
class ContextSettings:
    budget_tokens: int = field(default=1024, metadata=_limits(16, 32768))
    suffix_share: float = field(default=0.25, metadata=_limits(0.0, 0.9))
    grid_lines: int = field(default=32, metadata=_limits(1, 10000))  # window start snaps to this
    prepare_delay_ms: int = field(default=30, metadata=_limits(0, 5000))  # didChange debounce
    other_files: float = field(default=0.25, metadata=_limits(0.0, 0.75))  # budget share; 0: off
    watch_workspace: bool = True  # files changed on disk in the workspace folders are sources


@dataclass(frozen=True)
class BackendSettings:
    kind: str = field(default="embedded", metadata=_limits(choices=BACKEND_KINDS))
    url: str = ""  # base URL; empty: the kind's usual local address (Mercury: its API)
    model: str = ""  # empty: the kind's default model, or the one the server has loaded
    api_key_env: str = ""  # NAME of the environment variable that holds the key
    timeout_ms: int = field(default=5000, metadata=_limits(100, 600_000))
    connect_timeout_ms: int = field(default=1000, metadata=_limits(50, 60_000))
    fallback: str = field(default="none", metadata=_limits(choices=("none", "embedded")))

    @property
    def online(self) -> bool:
        return self.kind != "embedded"


@dataclass(frozen=True)
class Settings:
    enable: bool = True
    languages: dict[str, bool] = field(default_factory=dict)
    alternatives: int = field(default=3, metadata=_limits(1, 10))
    max_file_bytes: int = field(default=2_000_000, metadata=_limits(1000, 1 << 30))
    extent: str = field(default="auto", metadata=_limits(choices=get_args(ExtentSetting)))
    load_wait_ms: int = field(default=10_000, metadata=_limits(0, 600_000))
    model: ModelSettings = field(default_factory=ModelSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    offline: bool | None = field(default=None, metadata={"type": bool})  # None: kind decides
    backend: BackendSettings = field(default_factory=BackendSettings)

    @property
    def is_offline(self) -> bool:
        return not self.backend.online if self.offline is None else self.offline

    def enabled_for(self, language_id: str) -> bool:
        return self.enable and self.languages.get(language_id, True)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _check_scalar(value: Any, default: Any, meta: dict) -> str | None:
    """Why `value` cannot replace `default`, or None when it can."""
    expected = meta.get("type") or type(default)
    accepted = (int, float) if expected is float else expected
    if isinstance(value, bool) != (expected is bool) or not isinstance(value, accepted):
        return f"expected {expected.__name__}, got {type(value).__name__} {value!r}"
    if meta.get("choices") and value not in meta["choices"]:
        return f"expected one of {', '.join(meta['choices'])}, got {value!r}"
    low, high = meta.get("low"), meta.get("high")
    if (low is not None and value < low) or (high is not None and value > high):
        return f"expected a value in [{low}, {high}], got {value!r}"
    return None


def _convert_field(f: dataclasses.Field, value: Any, default: Any, path: str, issues: list[str]):
    if dataclasses.is_dataclass(default):
        return _from_json(type(default), value, path, issues)
    if isinstance(default, dict):
        if isinstance(value, dict) and all(isinstance(v, bool) for v in value.values()):
            return {str(k): v for k, v in value.items()}
        issues.append(f"{path}: expected an object of true/false values, got {value!r}")
        return default
    problem = _check_scalar(value, default, dict(f.metadata))
    if problem:
        issues.append(f"{path}: {problem}")
        return default
    return float(value) if isinstance(default, float) else value


def _from_json(cls: type, data: Any, path: str, issues: list[str]) -> Any:
    defaults = cls()
    if not isinstance(data, dict):
        issues.append(f"{path or 'settings'}: expected an object, got {data!r}")
        return defaults
    values = {}
    for f in dataclasses.fields(cls):
        key = camel(f.name)
        default = getattr(defaults, f.name)
        if key in data and data[key] is not None:
            where = f"{path}.{key}" if path else key
            values[f.name] = _convert_field(f, data[key], default, where, issues)
    return dataclasses.replace(defaults, **values)


def settings_from_json(data: Any) -> tuple[Settings, list[str]]:
    """Settings from client JSON, plus one line per invalid value that fell back to its default."""
    issues: list[str] = []
    if isinstance(data, dict) and isinstance(data.get("diffill"), dict):
        data = data["diffill"]
    if data is None:
        return Settings(), issues
    return _from_json(Settings, data, "", issues), issues
