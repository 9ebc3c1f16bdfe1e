"""The token-budgeted window of prefix and suffix around the cursor.

The model sees `suffix` first and then `prefix` (SPM), and the engine keeps the context's
keys/values between keystrokes: typing only appends to the prefix, so the cache stays valid
as long as the window's first line stays put. The start therefore moves with hysteresis:
it is kept while the prefix still fits, and when it overflows it jumps forward far enough
to leave at least a quarter of the budget free for the typing that follows, snapped forward
to a coarse line grid when that keeps most of the lines.
Windows are cut at line boundaries; the cursor's own line is always whole on both sides.

Chunks of other files (lsp_server/related.py) go before the prefix, in a share of the
budget reserved whenever other files are known. They are part of the cached context too, so
they are re-picked only when the window's start line moves or the other files changed
(lsp_server/sources.py: a file's change counts once it has settled), never per keystroke.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from lsp_server import related
from lsp_server.related import NOTHING, Related
from lsp_server.sources import Sources

MARGIN = 0.25  # share of the prefix budget left free after the window start moves
CURRENT_LINE_CHARS = 4000  # a minified line is cut to this many characters each side


@dataclass(frozen=True)
class Window:
    prefix: str
    suffix: str
    start_line: int  # document line of the prefix's first character
    related: Related = NOTHING  # chunks of other files, before the prefix

    @property
    def model_prefix(self) -> str:
        """The prefix the model sees: the other files' chunks, then the document's text."""
        return self.related.text + self.prefix


class LineCounter:
    """Token counts per line, cached: a keystroke re-counts only the line it changed. Only
    text that ends a line is kept: the cursor line's start is new at every keystroke, and
    keeping it filled the cache with strings counted once (a soak: 1,200 every 10 minutes)."""

    def __init__(self, count_tokens: Callable[[str], int], capacity: int = 50_000) -> None:
        self._count, self._capacity, self._seen = count_tokens, capacity, {}

    def __call__(self, line: str) -> int:
        if not line.endswith("\n"):
            return self._count(line)
        if line not in self._seen:
            if len(self._seen) >= self._capacity:
                self._seen.clear()
            self._seen[line] = self._count(line)
        return self._seen[line]


def _suffix(text: str, offset: int, budget: int, count: Callable[[str], int]) -> tuple[str, int]:
    """Rest of the cursor's line plus whole following lines within `budget` tokens."""
    end = text.find("\n", offset)
    end = len(text) if end < 0 else end + 1
    end = min(end, offset + CURRENT_LINE_CHARS)
    used = count(text[offset:end])
    while end < len(text):
        nxt = text.find("\n", end)
        nxt = len(text) if nxt < 0 else nxt + 1
        cost = count(text[end:nxt])
        if used + cost > budget:
            break
        used, end = used + cost, nxt
    return text[offset:end], used


def _line_starts_back(text: str, line_start: int, budgets: tuple[int, int], count) -> list[int]:
    """Earliest line starts (char offsets) whose lines before `line_start` fit each budget."""
    fits, used, start = [line_start, line_start], 0, line_start
    while start > 0:
        prev = text.rfind("\n", 0, start - 1) + 1
        used += count(text[prev:start])
        if used > budgets[0]:
            break
        fits[0] = prev
        if used <= budgets[1]:
            fits[1] = prev
        start = prev
    return fits


def _snap(text: str, fit_margin: int, cursor_line: int, grid: int) -> int:
    """The next grid line after `fit_margin`, unless that drops over half the lines left."""
    margin_line = text.count("\n", 0, fit_margin)
    target = margin_line + (-margin_line) % grid
    if target > (margin_line + cursor_line) // 2:
        return fit_margin
    return _offset_of_line(text, fit_margin, margin_line, target)


def build_window(
    text: str,
    offset: int,
    count: Callable[[str], int],
    budget: int,
    suffix_share: float,
    grid: int = 32,
    anchor: int | None = None,
) -> Window:
    """The window at `offset`, keeping the start line `anchor` when it still fits."""
    suffix, used = _suffix(text, offset, int(budget * suffix_share), count)
    line_start = max(text.rfind("\n", 0, offset) + 1, offset - CURRENT_LINE_CHARS)
    room = max(budget - used - count(text[line_start:offset]), 0)
    fit, fit_margin = _line_starts_back(text, line_start, (room, int(room * (1 - MARGIN))), count)
    fit_line, cursor_line = text.count("\n", 0, fit), text.count("\n", 0, offset)
    if anchor is not None and fit_line <= anchor <= cursor_line:
        start = _offset_of_line(text, fit, fit_line, anchor)
    elif fit == 0:
        start = 0
    else:
        start = _snap(text, fit_margin, cursor_line, grid)
    return Window(text[start:offset], suffix, text.count("\n", 0, start))


def _offset_of_line(text: str, offset: int, line: int, target: int) -> int:
    while line < target:
        offset, line = text.find("\n", offset) + 1, line + 1
    return offset


class WindowPlanner:
    """Windows per document, remembering each document's start line for the hysteresis and
    its chunks of other files with what they were picked for."""

    def __init__(self, count_tokens: Callable[[str], int], sources: Sources | None = None) -> None:
        self._count = LineCounter(count_tokens)
        self._sources = sources or Sources()
        self._anchors: dict[str, int] = {}
        self._picks: dict[str, tuple[tuple, Related]] = {}

    def window(
        self,
        uri: str,
        text: str,
        offset: int,
        budget: int,
        share: float,
        grid: int,
        other_files: float = 0.0,
        language: str = "",
    ) -> Window:
        """The window at `offset`; `other_files` of `budget` is kept for other files' chunks."""
        reserve = int(budget * other_files) if self._sources.has_others(uri) else 0
        anchor = self._anchors.get(uri)
        window = build_window(text, offset, self._count, budget - reserve, share, grid, anchor)
        self._anchors[uri] = window.start_line
        if reserve:
            window = replace(window, related=self._related(uri, window, reserve, language))
        return window

    def _related(self, uri: str, window: Window, reserve: int, language: str) -> Related:
        """The last pick for `uri` while its start line, budget and the other files hold."""
        key = (window.start_line, reserve, language, self._sources.signature(uri))
        held = self._picks.get(uri)
        if held is None or held[0] != key:
            query = related.query_names(window.prefix, window.suffix)
            chunks = self._sources.chunks(uri)
            picked = related.pick(chunks, query, reserve, self._count, language)
            held = self._picks[uri] = (key, related.render(picked, language))
        return held[1]

    def forget(self, uri: str) -> None:
        self._anchors.pop(uri, None)
        self._picks.pop(uri, None)
