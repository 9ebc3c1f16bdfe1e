"""diffill/evaluation/plausible.py: golden cases for the syntax check `diffill eval` reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffill.evaluation.plausible import bracket_balance, plausible

SOURCE = "def area(w, h):\n    return w * h\n\n\nprint(area(2, 3))\n"
MIDDLE = "return w * h"


@pytest.fixture
def module(tmp_path: Path) -> tuple[str, int]:
    path = tmp_path / "area.py"
    path.write_text(SOURCE)
    return str(path), SOURCE.index(MIDDLE)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("return w * h", True),
        ("return (w + h) * 2", True),
        ("return (w * h", False),  # an unclosed bracket breaks the file
        ("", False),  # a def with an empty body does not parse
        ("pass", True),
    ],
)
def test_python_answers_are_checked_in_the_whole_file(module, answer: str, expected: bool) -> None:
    path, start = module
    assert plausible("python", path, start, MIDDLE, answer) is expected


def test_python_example_that_cannot_be_checked_is_none(module, tmp_path: Path) -> None:
    path, start = module
    assert plausible("python", path, start + 1, MIDDLE, "x") is None  # the middle is not there
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n    return 1\n")
    assert plausible("python", str(broken), 12, "return 1", "return 1") is None
    assert plausible("python", str(tmp_path / "gone.py"), 0, "x", "x") is None


@pytest.mark.parametrize(
    ("middle", "answer", "expected"),
    [
        ("foo(a, b);", "bar(x);", True),
        ("foo(a, b);", "bar(x;", False),
        ("if (x) {", "while (y) {", True),  # opens a block like the middle did
        ("if (x) {", "if (x) {}", False),
        ("arr[i] = 0;", "", True),  # an empty answer keeps the balance of a balanced middle
    ],
)
def test_other_languages_keep_the_bracket_balance(middle: str, answer: str, expected: bool) -> None:
    assert plausible("c", "unused.c", 0, middle, answer) is expected


def test_bracket_balance_counts_each_kind() -> None:
    assert bracket_balance("f(a[0], {") == (1, 0, 1)
