"""Is a completion syntactically plausible where it lands? Issue 6 asks every language for
non-empty, syntactically plausible completions; exact match cannot say that.

Python: the held-out file, with the answer in place of the middle, still parses (checked only
where the original parses). Other languages: the answer opens and closes brackets like the
middle it replaces, a cheap check that needs no parser for each language.
"""

from __future__ import annotations

import ast
import functools
import warnings
from pathlib import Path

BRACKETS = ("()", "[]", "{}")


def bracket_balance(text: str) -> tuple[int, ...]:
    """Opens minus closes of each bracket kind."""
    return tuple(text.count(pair[0]) - text.count(pair[1]) for pair in BRACKETS)


def python_parses(source: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes and the like are warnings, not errors
        try:
            ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    return True


@functools.lru_cache(maxsize=64)
def parsing_original(path: str) -> str | None:
    """The file's text when it parses as Python, else None (nothing to compare against)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if python_parses(text) else None


def plausible(language: str, path: str, start: int, middle: str, answer: str) -> bool | None:
    """Whether `answer` in place of `middle` (at char offset `start` of the file at `path`)
    keeps the file plausible; None when this example cannot be checked."""
    if language != "python":
        return bracket_balance(answer) == bracket_balance(middle)
    original = parsing_original(path)
    if original is None or original[start : start + len(middle)] != middle:
        return None
    return python_parses(original[:start] + answer + original[start + len(middle) :])
