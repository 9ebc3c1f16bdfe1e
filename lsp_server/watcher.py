"""Workspace files changed on disk, watched with `watchfiles` on a background thread.

watchfiles (Rust notify over inotify) reports which files changed: nothing is crawled and no
socket is opened. Each changed file that is small enough, not binary, UTF-8, and outside
version-control, dependency, virtual-environment and build folders is read on the watcher
thread and handed to `deliver`, which must hop to the event loop itself. A folder that
appears (a checkout, an unpacked archive) is read whole: files created in it before its
watch was set up raise no event of their own.
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
WAKE_MS = 1000  # the first wake-up says the watch is set up (changes before it are missed)
BINARY_PROBE = 8192  # a NUL byte in the first this many bytes means binary
STOP_TIMEOUT_S = 2.0
MAX_NEW_FOLDER_FILES = 200  # files read from one folder that appeared

Deliver = Callable[[str, "str | None"], None]
Report = Callable[[str, bool], None]  # (message, is_error)


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


def batches(paths: list[str], stop: threading.Event, keep, debounce_ms: int, step_ms: int = 50):
    """watchfiles' batches of changes under `paths` until `stop`, and an empty batch every
    WAKE_MS without changes (the first one says the watch is set up)."""
    from watchfiles import watch

    return watch(
        *paths,
        watch_filter=keep,
        debounce=debounce_ms,
        step=step_ms,
        stop_event=stop,
        raise_interrupt=False,
        ignore_permission_denied=True,
        rust_timeout=WAKE_MS,
        yield_on_timeout=True,
    )


def files_under(folder: str, limit: int = MAX_NEW_FOLDER_FILES) -> list[str]:
    """Up to `limit` files in `folder` and its subfolders, ignored folders skipped."""
    found: list[str] = []
    for parent, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if name not in IGNORED_DIRS]
        found.extend(os.path.join(parent, name) for name in files)
        if len(found) >= limit:
            break
    return found[:limit]


class Watcher:
    """One thread watching `roots` until `stop`; `deliver(uri, text or None)` per change,
    `report` once the watch is set up and when it fails."""

    def __init__(self, roots: list[str], max_bytes: int, deliver: Deliver, report: Report) -> None:
        self.roots = tuple(root for root in roots if os.path.isdir(root))
        self._max_bytes, self._deliver, self._report = max_bytes, deliver, report
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
        from watchfiles import DefaultFilter

        keep = DefaultFilter(ignore_dirs=IGNORED_DIRS)
        changes = batches(list(self.roots), self._stop, keep, DEBOUNCE_MS)
        where, ready = ", ".join(self.roots), False
        try:
            for batch in changes:
                if not ready:
                    ready = True
                    self._report(f"watching {where} for changed files", False)
                for change, path in batch:
                    self._changed(change, path, keep)
        except Exception as exc:  # the thread's boundary: say why watching stopped
            self._report(f"watching {where} stopped: {exc}", True)

    def _changed(self, change, path: str, keep: Callable) -> None:
        from watchfiles import Change

        if change == Change.added and os.path.isdir(path):
            for file in files_under(path):
                if keep(change, file):
                    self._deliver(from_fs_path(file), read_source(file, self._max_bytes))
        elif change == Change.deleted:
            self._deliver(from_fs_path(path), None)
        else:
            self._deliver(from_fs_path(path), read_source(path, self._max_bytes))
