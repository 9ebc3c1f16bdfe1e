"""Fill-in-the-middle training examples cut from real source files.

Layout (SPM), S tokens in all:
    <fim_suffix> suffix <fim_prefix> prefix <fim_middle> | middle <eom> <eom>... | filler
The middle starts exactly at a block boundary (a multiple of C), so in training its first
block sees precisely the context a canvas sees at inference. Alignment trims the suffix's
far end (then the prefix's far start) instead of padding the context, because padding
would put tokens in the context that inference never has. The middle is followed by <eom>
and padded with <eom> to a whole number of blocks; a short file leaves filler at the end.

Suffix, prefix and middle are tokenized separately, as the serving side does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.tokens import EOM_ID, MIDDLE_ID, PREFIX_ID, SUFFIX_ID

IGNORE, TOKEN, PAD = 0, 1, 2  # roles: no loss (filler), a real target, <eom> padding
SPAN_KINDS = ("partial_line", "line", "lines", "end_of_file")
MAX_SPAN_LINES = 8
CHARS_PER_TOKEN_BOUND = 8  # a token never covers more characters: windows cut before encoding
SPECIALS_IN_CONTEXT = 3

Encoder = Callable[[list[str]], list[list[int]]]


@dataclass(frozen=True)
class Span:
    prefix: str
    middle: str
    suffix: str
    kind: str


@dataclass(frozen=True)
class Example:
    ids: np.ndarray  # (S,) int64
    roles: np.ndarray  # (S,) uint8: IGNORE, TOKEN or PAD for each position
    middle_start: int  # a multiple of the canvas size
    middle_tokens: int  # the middle's own tokens, <eom> excluded
    kind: str


def _line_bounds(text: str) -> list[tuple[int, int, int]]:
    """(start, code start after indentation, end before the newline) of each non-blank line."""
    bounds, start = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if body.strip():
            bounds.append((start, start + len(body) - len(body.lstrip()), start + len(body)))
        start += len(line)
    return bounds


def cut_span(text: str, rng: random.Random, kind: str | None = None) -> Span | None:
    """A random gap in text: part of a line, a line, several lines, or the end of the file."""
    lines = _line_bounds(text)
    if not lines:
        return None
    kind = kind or rng.choice(SPAN_KINDS)
    if kind == "end_of_file":
        first = rng.randrange(max(0, len(lines) - MAX_SPAN_LINES), len(lines))
        _, begin, _ = lines[first]
        return Span(text[:begin], text[begin:], "", kind)
    first = rng.randrange(len(lines))
    _, begin, end = lines[first]
    if kind == "partial_line":
        begin = rng.randrange(begin, end)
        end = end if rng.random() < 0.5 else rng.randrange(begin + 1, end + 1)
    elif kind == "lines":
        end = lines[min(len(lines) - 1, first + rng.randint(1, MAX_SPAN_LINES - 1))][2]
    elif kind != "line":
        raise ValueError(f"unknown span kind {kind!r}; choose from {SPAN_KINDS}")
    return Span(text[:begin], text[begin:end], text[end:], kind)


def fit_context(
    suffix: list[int], prefix: list[int], budget: int, canvas_size: int
) -> tuple[list[int], list[int]] | None:
    """Trim the suffix's far end, then the prefix's far start, so the context (specials
    included) fills a whole number of blocks within budget. The suffix keeps at least a
    quarter of the kept context. None when not even one block of context remains."""
    keep = min(len(suffix) + len(prefix), budget)
    keep -= (keep + SPECIALS_IN_CONTEXT) % canvas_size
    if keep < 0:
        return None
    suffix_len = min(len(suffix), max(min(len(suffix), keep // 4), keep - len(prefix)))
    prefix_len = keep - suffix_len
    return suffix[:suffix_len], prefix[len(prefix) - prefix_len :]


def make_example(
    span: Span, encode: Encoder, seq_len: int, canvas_size: int, max_middle_tokens: int
) -> Example | None:
    """Lay a span out as one aligned training sequence; None if the middle is too long."""
    (middle,) = encode([span.middle])
    region = math.ceil((len(middle) + 1) / canvas_size) * canvas_size
    budget = seq_len - region - SPECIALS_IN_CONTEXT
    if len(middle) + 1 > max_middle_tokens or budget < 0:
        return None
    window = budget * CHARS_PER_TOKEN_BOUND
    suffix, prefix = encode([span.suffix[:window], span.prefix[-window:] if window else ""])
    fitted = fit_context(suffix, prefix, budget, canvas_size)
    if fitted is None:
        return None
    context = [SUFFIX_ID, *fitted[0], PREFIX_ID, *fitted[1], MIDDLE_ID]
    ids = np.full(seq_len, EOM_ID, dtype=np.int64)
    roles = np.full(seq_len, IGNORE, dtype=np.uint8)
    used = len(context) + region
    ids[: len(context) + len(middle)] = context + middle
    roles[: len(context) + len(middle) + 1] = TOKEN  # the first <eom> is a real target
    roles[len(context) + len(middle) + 1 : used] = PAD
    return Example(ids, roles, len(context), len(middle), span.kind)


def examples_from_text(
    text: str, encode: Encoder, rng: random.Random, count: int, **layout: int
) -> list[Example]:
    """Up to `count` examples from one file, each at a fresh random span."""
    found = []
    for _ in range(2 * count):
        span = cut_span(text, rng)
        example = span and make_example(span, encode, **layout)
        if example is not None:
            found.append(example)
        if len(found) == count:
            break
    return found
