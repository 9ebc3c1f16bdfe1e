"""Trim what the text after the cursor already holds.

Two overlaps are common: closing characters the editor auto-inserted (`foo(║)` completed
as `a, b)`), and a multi-line completion that runs on into the next line of the document.
"""

from __future__ import annotations

import re

from lsp_server.postprocess.base import Context, Item

LONG_OVERLAP = 8  # overlaps this long are trimmed even when they contain words


def _trim_line_overlap(text: str, line_suffix: str) -> str:
    """Drop the longest end of `text` that the rest of the cursor's line starts with."""
    body, head = text.rstrip(" \t"), line_suffix.strip()
    for size in range(min(len(body), len(head)), 0, -1):
        tail = head[:size]
        if body.endswith(tail) and (size >= LONG_OVERLAP or not re.search(r"\w", tail)):
            return body[:-size]
    return text


def _next_line(suffix: str) -> str:
    """The first non-blank line after the cursor's line, stripped."""
    for line in suffix.split("\n")[1:]:
        if line.strip():
            return line.strip()
    return ""


def _drop_repeated_lines(text: str, suffix: str) -> str:
    target, lines = _next_line(suffix), text.split("\n")
    for i, line in enumerate(lines[1:], start=1):
        if target and line.strip() == target:
            return "\n".join(lines[:i]).rstrip(" \t\n")
    return text


def trim_suffix(item: Item, context: Context) -> Item | None:
    text = _drop_repeated_lines(item.text, context.suffix)
    return item.with_text(_trim_line_overlap(text, context.line_suffix))
