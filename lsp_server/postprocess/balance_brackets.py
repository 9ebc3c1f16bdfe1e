"""Cut a completion at its first closing bracket that closes nothing.

Brackets still open before the cursor may be closed by the completion; a closer that
matches neither those nor the completion's own openers starts code the user did not write.
Quoted strings are skipped, line by line, so `")"` inside a string is not a bracket.
"""

from __future__ import annotations

from lsp_server.postprocess.base import Context, Item

PAIRS = {")": "(", "]": "[", "}": "{"}
QUOTES = "\"'`"
PREFIX_CHARS = 4000  # brackets further back rarely matter and cost time to scan


def _brackets(text: str, quote: str = "") -> tuple[list[tuple[int, str]], str]:
    """Bracket characters outside quotes, with their index, and the quote open at the end."""
    found = []
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote or ch == "\n" else quote
        elif ch in QUOTES:
            quote = ch
        elif ch in PAIRS or ch in PAIRS.values():
            found.append((i, ch))
    return found, quote


def _open_before(prefix: str) -> tuple[list[str], str]:
    stack: list[str] = []
    found, quote = _brackets(prefix[-PREFIX_CHARS:])
    for _, ch in found:
        if ch not in PAIRS:
            stack.append(ch)
        elif stack and stack[-1] == PAIRS[ch]:
            stack.pop()
    return stack, quote


def balance_brackets(item: Item, context: Context) -> Item | None:
    stack, quote = _open_before(context.prefix)
    for i, ch in _brackets(item.text, quote)[0]:
        if ch not in PAIRS:
            stack.append(ch)
        elif stack and stack[-1] == PAIRS[ch]:
            stack.pop()
        else:
            return item.with_text(item.text[:i].rstrip(" \t"))
    return item
