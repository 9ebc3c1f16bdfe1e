"""The token-budgeted window: line cuts, the suffix share, and the hysteresis of its start.

Token counts come from the project's real tokenizer (models/tokenizer.json)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from lsp_server.context import LineCounter, WindowPlanner, build_window

TOKENIZER = Path(__file__).resolve().parent.parent / "models" / "tokenizer.json"


@pytest.fixture(scope="module")
def count():
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _file(lines: int) -> str:
    return "".join(f"value_{i} = compute(value_{i - 1}, {i})\n" for i in range(lines))


def test_small_file_fits_whole(count):
    text = "def f(x):\n    return x\n\nprint(f(1))\n"
    offset = text.index("x\n")
    window = build_window(text, offset, count, budget=200, suffix_share=0.3)
    assert (window.prefix, window.suffix, window.start_line) == (text[:offset], text[offset:], 0)


def test_window_respects_budget_and_cuts_at_lines(count):
    text = _file(400)
    offset = text.index("value_300 =")
    window = build_window(text, offset, count, budget=1000, suffix_share=0.25, grid=16)
    assert count(window.prefix) + count(window.suffix) <= 1000
    assert count(window.suffix) <= 250 + count(text[offset : text.index("\n", offset) + 1])
    assert text[:offset].endswith(window.prefix) and text[offset:].startswith(window.suffix)
    assert window.prefix.startswith("value_") and window.suffix.endswith("\n")
    assert window.start_line % 16 == 0  # snapped to the grid


def test_cursor_line_is_whole_on_both_sides(count):
    text = "a = 1\nresult = compute(alpha, beta, gamma)\nb = 2\n"
    offset = text.index("beta")
    window = build_window(text, offset, count, budget=10, suffix_share=0.5)
    assert window.prefix.endswith("result = compute(alpha, ")
    assert window.suffix.startswith("beta, gamma)\n")


def test_start_stays_while_typing_and_jumps_past_overflow(count):
    planner, budget = WindowPlanner(count), 1600  # about 80 lines of prefix, 20 of margin
    text = _file(600)
    offset = text.index("value_250 =")
    first = planner.window("u", text, offset, budget, 0.25, 16)
    starts = [first.start_line]
    for line in range(251, 290):  # the user moves down line by line
        offset = text.index(f"value_{line} =")
        starts.append(planner.window("u", text, offset, budget, 0.25, 16).start_line)
    assert len(set(starts)) <= 3, "the window start must not move at every line"
    last = planner.window("u", text, offset, budget, 0.25, 16)
    assert last.start_line > first.start_line  # it did move once the prefix overflowed
    assert count(last.prefix) <= budget * 0.75 + 20  # with room left for further typing


def test_typing_keeps_the_start_exactly(count):
    planner = WindowPlanner(count)
    text = _file(500)
    offset = text.index("value_400 =")
    before = planner.window("u", text, offset, 300, 0.25, 8)
    typed = text[:offset] + "x = 1\n" + text[offset:]
    after = planner.window("u", typed, offset + 6, 300, 0.25, 8)
    assert after.start_line == before.start_line
    assert after.prefix == before.prefix + "x = 1\n"


def test_moving_above_the_start_recomputes_it(count):
    planner = WindowPlanner(count)
    text = _file(500)
    low = planner.window("u", text, text.index("value_450 ="), 300, 0.25, 8)
    high = planner.window("u", text, text.index("value_100 ="), 300, 0.25, 8)
    assert high.start_line < 100 < low.start_line
    assert high.prefix.endswith("value_99 = compute(value_98, 99)\n")


def test_typing_a_line_counts_each_whole_line_once_and_keeps_no_partial_line(count) -> None:
    """Every keystroke re-counts the cursor line's start; whole lines come from the cache,
    and the line's partial starts are not kept (they filled it over a long session)."""
    calls: list[str] = []
    counter = LineCounter(lambda text: calls.append(text) or count(text))
    before = _file(40)
    line = "result = compute(value_39, 40)\n"
    for end in range(1, len(line) + 1):
        text = before + line[:end]
        build_window(text, len(text), counter, budget=2000, suffix_share=0.3)
    whole_lines = set(before.splitlines(keepends=True))
    assert sum(text in whole_lines for text in calls) == len(whole_lines)  # each once
    assert len(counter._seen) <= len(whole_lines) + 2  # + the typed line once whole, + ""
