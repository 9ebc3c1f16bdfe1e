"""Every golden case in tests/golden/<rule>/*.toml through the full post-processing pipeline.

In a case's text, ║ marks the cursor and ├…┤ the completion right after it. `[expected]` holds
the text with the kept completion marked the same way, or `unchanged = true` / `discard = true`.
`[config]` is merged over the defaults: `extent` is the server setting of that name. The cases
in golden/extent/ are named after the extent rule (lsp_server/extent.py) they show.
A known-bad case stays in the suite with `notEqual = true  # FIXME`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lsp_server import extent
from lsp_server.postprocess import RULES, Context, postprocess
from lsp_server.postprocess.base import Item

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(GOLDEN.glob("*/*.toml"))


def split(marked: str) -> tuple[str, str, str]:
    """(prefix, completion, suffix) of a text marked `prefix║├completion┤suffix`."""
    prefix, rest = marked.split("║├", 1)
    completion, suffix = rest.split("┤", 1)
    return prefix, completion, suffix


def expected_text(case: dict, completion: str) -> str | None:
    expected = case["expected"]
    if expected.get("discard"):
        return None
    if expected.get("unchanged"):
        return completion
    return split(expected["text"])[1]


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_case(path: Path) -> None:
    case = tomllib.loads(path.read_text())
    assert case["description"] and isinstance(case.get("config", {}), dict)
    prefix, completion, suffix = split(case["context"]["text"])
    extent = case.get("config", {}).get("extent", "auto")
    context = Context(prefix, suffix, case["context"].get("language", ""), extent)
    result = postprocess(completion, context)
    if case.get("notEqual"):
        assert result != expected_text(case, completion)
    else:
        assert result == expected_text(case, completion)


def test_every_rule_has_golden_cases() -> None:
    folders = {path.parent.name for path in CASES}
    rule_modules = {rule.__module__.rsplit(".", 1)[1] for rule in RULES}
    assert rule_modules <= folders


def test_every_extent_rule_has_golden_cases() -> None:
    stems = [path.stem for path in CASES if path.parent.name == "extent"]
    for rule in extent.RULES:
        assert any(stem.startswith(rule.__name__) for stem in stems), rule.__name__


def test_rules_never_modify_the_item_they_get() -> None:
    context = Context("print(", ")\n")
    for rule in RULES:
        item = Item('"x")\n\n')
        rule(item, context)
        assert item.text == '"x")\n\n'
