"""The contract with editor clients beyond standard LSP: `diffill/status` and `diffill.accepted`.

`diffill/status` (request; params: none or {}) returns:

    {
      "state": "loading" | "ready" | "failed",
      "error": str | null,              # why the model could not load, one line; "kept the
                                        # previous model: ..." when a reload failed
      "loads": int,                     # models made ready, reloads included
      "loadFailures": int,              # loads that failed (each new reason shown once)
      "watchingModel": bool,            # the model folder is watched for new weights
      "model": {...},                   # Completer.describe(): name, runtime, sizes
      "mode": "diffusion" | "ar",
      "runtime": str,                   # the runtime setting ("auto", "onnx", "onnx-int8", "torch")
      "enabled": bool,
      "latencyMs": {"last": [float, ...], "p50": float | null, "p95": float | null},
      "lastEngine": {"totalMs", "encodeMs", "denoiseMs": float, "contextTokens",
                     "reusedTokens": int} | null,   # the last model run (not cache hits)
      "served": int,                    # completion requests answered with items
      "cacheHits": int,                 # of those, answered from the cache
      "accepted": int,                  # suggestions the user accepted (diffill.accepted)
      "pending": int,                   # completion and pre-encoding jobs not finished yet
      "tasks": int,                     # asyncio tasks alive in the server, this one included
      "handling": int,                  # messages whose handlers have not finished; a number
                                        # that grows while typing is a leak
      "stoppedRuns": int,               # engine runs skipped or stopped between steps by a cancel
      "unexpectedFailures": int,        # requests answered empty after a bug in the engine
                                        # (each new one logged with its traceback)
      "otherFiles": {"sources": [str],  # files that may lend chunks, most recently changed first
                     "picked": [str]},  # "path:first-last" chunks in the last request's context
      "backend": {"kind": str,          # backend.kind: "embedded", "openai-fim", "ollama", ...
                  "offline": bool,      # whether online kinds are refused
                  "error": str | null,  # the online backend's last failure, one line; null
                                        # once it answers again
                  "failures": int,      # online requests that failed
                  "fallbacks": int}     # of those, answered by the embedded model
    }

The API key is never part of it: settings name only the variable that holds it.

`diffill/debug/document` (request; params: {"uri": str}) returns the text the server holds
for an open document, `{"uri": str, "version": int | null, "text": str}`, so tests and bug
reports can compare it with the editor's; a document that is not open is an InvalidParams
error. It tells the client only what the client sent.

`diffill.accepted` (a `workspace/executeCommand` command; every item the server returns
carries it as `command`, so clients run it after inserting the item): arguments
`[{"uri": str, "chars": int}]`, result null. It only increments the local accept count:
nothing leaves the machine.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from engine.completer import Timings

STATUS_REQUEST = "diffill/status"
DEBUG_DOCUMENT_REQUEST = "diffill/debug/document"
ACCEPTED_COMMAND = "diffill.accepted"
KEPT_LATENCIES = 20


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(int(share * len(ordered)), len(ordered) - 1)], 2)


@dataclass
class Stats:
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=KEPT_LATENCIES))
    served: int = 0
    cache_hits: int = 0
    accepted: int = 0
    last_engine: Timings | None = None

    def record(self, milliseconds: float, engine: Timings | None) -> None:
        """One answered request; `engine` is None when the cache answered it."""
        self.latencies.append(round(milliseconds, 2))
        self.served += 1
        self.cache_hits += engine is None
        self.last_engine = engine or self.last_engine

    def as_json(self) -> dict[str, object]:
        last = list(self.latencies)
        return {
            "latencyMs": {
                "last": last,
                "p50": _percentile(last, 0.5),
                "p95": _percentile(last, 0.95),
            },
            "served": self.served,
            "cacheHits": self.cache_hits,
            "accepted": self.accepted,
            "lastEngine": _timings(self.last_engine),
        }


def _timings(t: Timings | None) -> dict[str, float | int] | None:
    if t is None:
        return None
    return {
        "totalMs": round(t.total_ms, 2),
        "encodeMs": round(t.encode_ms, 2),
        "denoiseMs": round(t.denoise_ms, 2),
        "contextTokens": t.context_tokens,
        "reusedTokens": t.reused_tokens,
    }


@dataclass
class BackendHealth:
    """The online backend's last failure. A reason is logged when it is new: the same one
    again (every keystroke while a server is down, or a refused key) is only counted."""

    error: str | None = None
    failures: int = 0
    fallbacks: int = 0

    def failed(self, reason: str) -> bool:
        """Record a failure; True when its reason differs from the last one."""
        self.failures += 1
        news, self.error = reason != self.error, reason
        return news

    def ok(self) -> None:
        self.error = None

    def as_json(self, kind: str, offline: bool) -> dict[str, object]:
        return {
            "kind": kind,
            "offline": offline,
            "error": self.error,
            "failures": self.failures,
            "fallbacks": self.fallbacks,
        }
