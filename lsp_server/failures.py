"""Unexpected failures inside the engine: bugs, not the `DiffillError`s it raises on purpose.

One is logged with its traceback the first time it happens (the same failure again is only
counted: a bug hit on every keystroke must not flood the log), the request is answered empty,
and the model thread goes on with the next request.

Fault injection for tests and bug reports, real code in the server: with the environment
variable DIFFILL_INJECT_FAULT=engine, a model-thread run whose prefix contains FAULT_MARKER
raises a RuntimeError, as a bug inside the engine would.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field

FAULT_ENV = "DIFFILL_INJECT_FAULT"
FAULT_MARKER = "diffill-inject-fault"


def inject(prefix: str) -> None:
    """Raise the injected fault when it is switched on and asked for by the text."""
    if os.environ.get(FAULT_ENV) == "engine" and FAULT_MARKER in prefix:
        raise RuntimeError(f"fault injected by {FAULT_ENV}=engine")


@dataclass
class UnexpectedFailures:
    count: int = 0
    seen: set[str] = field(default_factory=set)

    def record(self, exc: BaseException) -> str | None:
        """Count `exc`; its traceback when this kind of failure is new, else None."""
        self.count += 1
        key = f"{type(exc).__name__}: {exc}"
        if key in self.seen:
            return None
        self.seen.add(key)
        return "".join(traceback.format_exception(exc)).rstrip()
