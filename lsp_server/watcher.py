"""Workspace files changed on disk, watched with `watchfiles` on a background thread.

watchfiles (Rust notify over inotify) reports which files changed: nothing is crawled and no
socket is opened. Each changed file that is small enough, not binary, UTF-8, and outside
version-control, dependency, virtual-environment and build folders is read on the watcher
thread and handed to `deliver`, which must hop to the event loop itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from pygls.uris import from_fs_path

IGNORED_DIRS = (
    *("__pycache__", ".git", ".hg", ".svn", ".tox", ".venv", "venv", ".idea", "node_modules"),
    *(".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".eggs", ".cache"),
    *("site-packages", "dist-packages", "build", "dist", "target"),
)
DEBOUNCE_MS = 800  # watchfiles groups the changes of this long into one batch
BINARY_PROBE = 8192  # a NUL byte in the first this many bytes means binary
STOP_TIMEOUT_S = 2.0

Deliver = Callable[[str, "str | None"], None]


def read_source(path: str, max_bytes: int) -> str | None:
    """The file's text, or None when it is gone, not a file, too big, binary or not UTF-8."""
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > max_bytes:
            return None
        data = Path(path).read_bytes()
    except OSError:
        return None
    if b"\x00" in data[:BINARY_PROBE]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Watcher:
    """One thread watching `roots` until `stop`; `deliver(uri, text or None)` per change."""

    def __init__(
        self, roots: list[str], max_bytes: int, deliver: Deliver, on_error: Callable[[str], None]
    ) -> None:
        self.roots = tuple(root for root in roots if os.path.isdir(root))
        self._max_bytes, self._deliver, self._on_error = max_bytes, deliver, on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="diffill-watch", daemon=True)

    def start(self) -> None:
        if self.roots:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)

    def _run(self) -> None:
        from watchfiles import Change, DefaultFilter, watch

        changes = watch(
            *self.roots,
            watch_filter=DefaultFilter(ignore_dirs=IGNORED_DIRS),
            debounce=DEBOUNCE_MS,
            stop_event=self._stop,
            raise_interrupt=False,
            ignore_permission_denied=True,
        )
        try:
            for batch in changes:
                for change, path in batch:
                    gone = change == Change.deleted
                    text = None if gone else read_source(path, self._max_bytes)
                    self._deliver(from_fs_path(path), text)
        except Exception as exc:  # the thread's boundary: say why watching stopped
            self._on_error(f"watching {', '.join(self.roots)} stopped: {exc}")
