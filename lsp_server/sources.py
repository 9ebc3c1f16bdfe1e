"""The other files that may lend chunks to the context: open documents and files changed on
disk, the most recently changed first, at most MAX_SOURCES of them. A document borrows only
from files of its own family of extensions (related.family), so prose or another language
never lands in its prefix.

A change to a file already known counts once the file has been quiet for SETTLE_S: the
document being typed in, or a log file being appended to, must not change the other
documents' picks at every keystroke or write, since each new pick invalidates their cached
context keys/values. A new or removed file counts at once. For an open document the editor's
text wins: disk events for it are ignored. Used from the event loop thread only.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pygls.uris import to_fs_path

from lsp_server.related import Chunk, family, related_kinds, split_chunks

MAX_SOURCES = 20
MAX_SOURCE_CHARS = 500_000  # bigger files cost more to chunk and score than they give
SETTLE_S = 1.0


@functools.lru_cache(maxsize=1024)
def file_key(uri: str) -> str:
    """One key per file however its URI is spelled (the client's and watchfiles' differ in
    percent-encoding): the path for file URIs, else the URI itself."""
    return (to_fs_path(uri) if uri.startswith("file:") else None) or uri


@dataclass
class _Source:
    label: str
    text: str  # the settled text: what picks see
    stamp: int  # changes whenever `text` does
    pending: str | None = None  # a newer text, not settled yet
    changed_at: float = 0.0
    chunks: tuple[Chunk, ...] | None = None  # of `text`, split when first needed

    @property
    def family(self) -> str:
        return family(self.label)


class Sources:
    """Files by `file_key`; public methods take URIs."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._files: dict[str, _Source] = {}  # in order of change, the most recent last
        self._open: set[str] = set()
        self._stamps = itertools.count()
        self._clock = clock
        self.roots: tuple[str, ...] = ()  # workspace folder paths: labels are relative to them

    def opened(self, uri: str, text: str) -> None:
        self._open.add(file_key(uri))
        self.update(uri, text)

    def closed(self, uri: str) -> None:
        self._open.discard(file_key(uri))
        self._files.pop(file_key(uri), None)

    def changed_on_disk(self, uri: str, text: str | None) -> None:
        """A watched file's new text, or None when it was deleted or is no longer usable."""
        if file_key(uri) in self._open:
            return
        if text is None:
            self._files.pop(file_key(uri), None)
        else:
            self.update(uri, text)

    def update(self, uri: str, text: str) -> None:
        """Record `text` as the newest version of `uri` (too big or binary: not a source)."""
        key = file_key(uri)
        source = self._files.pop(key, None)
        if len(text) > MAX_SOURCE_CHARS or "\x00" in text[:8192]:
            return
        if source is None:
            source = _Source(self._label(key), text, next(self._stamps))
        else:
            source.pending = None if text == source.text else text
            source.changed_at = self._clock()
        self._files[key] = source
        if len(self._files) > MAX_SOURCES:
            del self._files[next(iter(self._files))]

    def has_others(self, uri: str) -> bool:
        """Whether any file may lend `uri` chunks."""
        return any(True for _ in self._others(uri))

    def signature(self, uri: str) -> frozenset[tuple[str, int]]:
        """What the picks for `uri` depend on: the other files' settled versions."""
        self._settle()
        return frozenset((key, source.stamp) for key, source in self._others(uri))

    def chunks(self, uri: str) -> list[Chunk]:
        """The chunks of the files that may lend `uri` some, the most recent file's first."""
        self._settle()
        found: list[Chunk] = []
        for _, source in self._others(uri):
            if source.chunks is None:
                source.chunks = split_chunks(source.label, source.text)
            found.extend(source.chunks)
        return found

    def _others(self, uri: str) -> Iterator[tuple[str, _Source]]:
        """The files but `uri` of a family related to its own, the most recent first."""
        skip = file_key(uri)
        kind = family(skip)
        for key, source in reversed(self._files.items()):
            if key != skip and related_kinds(kind, source.family):
                yield key, source

    def labels(self) -> list[str]:
        """The known files, the most recently changed first (for `diffill/status`)."""
        return [source.label for source in reversed(self._files.values())]

    def _label(self, key: str) -> str:
        """The path relative to the workspace folder holding it, else the file name only:
        labels go into `diffill/status` and the model's context (an online backend's too),
        and a file of another workspace must not tell where that workspace is."""
        for root in self.roots:
            if key.startswith(root.rstrip(os.sep) + os.sep):
                return os.path.relpath(key, root)
        return key.rstrip("/").rsplit("/", 1)[-1]

    def _settle(self) -> None:
        now = self._clock()
        for source in self._files.values():
            if source.pending is not None and now - source.changed_at >= SETTLE_S:
                source.text, source.pending = source.pending, None
                source.stamp, source.chunks = next(self._stamps), None
