"""The plain functions behind the code actions: finding a placeholder function body, the
offers at a range, the gap the model fills, and its answer turned into an edit.

In the cases below `║` marks the cursor and `├…┤` the text the body replaces (`├┤`: an
insertion); a case without `├` expects no placeholder."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcContentModified
from pygls.workspace import TextDocument
from tokenizers import Tokenizer

from engine.errors import InputError
from lsp_server import code_actions
from lsp_server.code_actions import Offer
from lsp_server.config import ModelSettings, Settings
from lsp_server.function_body import find_placeholder
from lsp_server.postprocess.single_line import single_line
from lsp_server.postprocess.stop_at_dedent import stop_at_dedent

TOKENIZER = Path(__file__).resolve().parent.parent / "models" / "tokenizer.json"

PLACEHOLDERS = {
    "pass, cursor in the signature": "def add(a, ║b):\n    ├pass┤\n\n\nprint(add(1, 2))\n",
    "ellipsis in an async def": "async def fetch(url):\n    ║├...┤\n",
    "method with a multi-line signature, docstring and raise": (
        "class Shape:\n"
        "    def area(\n"
        "        self,\n"
        "    ) -> float:\n"
        '        """The area, in square units."""\n'
        '   ║     ├raise NotImplementedError("é: subclasses")  # TODO┤\n'
        "\n"
        "    def name(self):\n"
        "        return 'shape'\n"
    ),
    "a lone docstring gets the body after it": (
        'def mean(values):\n    """The average.\n\n    ║Empty lists raise."""├┤\n\nx = 1\n'
    ),
    "a bare raise NotImplementedError, comment kept above": (
        "def f():║\n    # compute it later\n    ├raise NotImplementedError┤\n"
    ),
    "the inner stub of a real function": (
        "def outer():\n    def inner(x):\n        ║├pass┤\n    return inner\n"
    ),
    "a syntax error later in the file does not matter": ("def f():\n    ├pass┤║\n\ndef broken(:\n"),
    "tab indentation": "if True:\n\tdef f():\n\t\t║├pass┤\n",
    "crlf line breaks": 'def f():\r\n    """Doc."""║├┤\r\n\r\nx = 1\r\n',
    "a decorated function": "@cache\ndef f(x):\n    ║├...┤\n",
    "a stub longer than the scan": 'def f():\n    """' + "line\n" * 250 + '"""\n    ║pass\n',
    "a stub after the docstring on its line": 'def f():\n    """Doc."""; ║pass\n',
    "a real body": "def f():\n    x = ║1\n    pass\n",
    "a one-line function": "def f(): ║pass\n",
    "a blank line after the stub": "def f():\n    pass\n║\nx = 1\n",
    "the real function around an inner stub": (
        "def outer():\n    def inner(x):\n        pass\n    return ║inner\n"
    ),
    "raise of another exception": "def f():\n    raise ValueError║\n",
    "not a function": "class A:\n    ║pass\n",
    "an empty file": "║",
}


def _case(marked: str) -> tuple[str, int, tuple[int, int] | None]:
    """(text, cursor offset, the span between ├ and ┤ or None) of a marked case."""
    text, marks = "", {}
    for ch in marked:
        if ch in "║├┤":
            marks[ch] = len(text)
        else:
            text += ch
    return text, marks["║"], (marks["├"], marks["┤"]) if "├" in marks else None


@pytest.mark.parametrize("marked", PLACEHOLDERS.values(), ids=PLACEHOLDERS.keys())
def test_placeholder(marked):
    text, cursor, expected = _case(marked)
    found = find_placeholder(text, cursor)
    assert (None if found is None else (found.start, found.end)) == expected


def test_a_lone_docstring_body_starts_on_a_new_line_at_its_indent():
    text, cursor, _ = _case(PLACEHOLDERS["crlf line breaks"])
    assert find_placeholder(text, cursor).lead == "\r\n    "
    text, cursor, _ = _case(PLACEHOLDERS["a lone docstring gets the body after it"])
    assert find_placeholder(text, cursor).lead == "\n    "


def _document(text: str, language: str = "python", version: int = 3) -> TextDocument:
    return TextDocument("file:///w/a.py", text, version=version, language_id=language)


def _range(l1: int, c1: int, l2: int, c2: int) -> types.Range:
    return types.Range(types.Position(l1, c1), types.Position(l2, c2))


STUB = "def add(a, b):\n    pass\n"


def test_offers_at_a_selection_inside_a_stub():
    found = code_actions.offers(_document(STUB), _range(0, 8, 0, 12))
    assert [(o.kind, STUB[o.start : o.end]) for o in found] == [
        ("rewrite", "a, b"),
        ("fill", "pass"),
    ]
    assert all(o.version == 3 and o.uri == "file:///w/a.py" for o in found)


def test_offers_at_a_cursor_and_outside_python():
    assert [o.kind for o in code_actions.offers(_document(STUB), _range(0, 3, 0, 3))] == ["fill"]
    in_text = _document(STUB, language="plaintext")
    in_text.uri = "file:///w/a.txt"
    assert [o.kind for o in code_actions.offers(in_text, _range(0, 8, 0, 12))] == ["rewrite"]


@pytest.mark.parametrize(
    ("only", "count"),
    [(None, 2), ([], 2), (["refactor"], 2), (["refactor.rewrite"], 2), (["quickfix"], 0)],
)
def test_the_clients_only_filter(only, count):
    assert len(code_actions.offers(_document(STUB), _range(0, 8, 0, 12), only)) == count


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (_range(0, 0, 5, 0), "position line 5 is past the end of the document"),
        (_range(1, 0, 1, 30), "position character 30 is past the end of line 1"),
        (_range(1, 4, 0, 2), "range end 0:2 is before its start 1:4"),
    ],
)
def test_a_range_outside_the_document_is_input_error(where, message):
    with pytest.raises(InputError, match=message):
        code_actions.offers(_document(STUB), where)


@pytest.fixture(scope="module")
def count_tokens():
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    return lambda text: len(tokenizer.encode(text).ids)


def test_rewrite_gap_is_the_text_around_the_selection(count_tokens):
    text = "def area(r):\n    return 3.14 * r * r\n\nprint(area(2))\n"
    selected = "3.14 * r * r"
    start = text.index(selected)
    offer = Offer("rewrite", "file:///w/a.py", 3, start, start + len(selected))
    gap = code_actions.gap(_document(text), offer, count_tokens, Settings())
    assert (gap.prefix, gap.suffix, gap.replaced) == (text[:start], text[offer.end :], selected)
    assert gap.max_tokens == max(8, -(-count_tokens(selected) * 3 // 2))
    size = count_tokens(selected)
    capped = Settings(model=ModelSettings(max_tokens=size))
    assert code_actions.gap(_document(text), offer, count_tokens, capped).max_tokens == size
    short = Settings(model=ModelSettings(max_tokens=size - 1))
    with pytest.raises(InputError, match=f"the selection is {size} tokens, over the {size - 1}"):
        code_actions.gap(_document(text), offer, count_tokens, short)


def test_fill_gap_puts_the_body_after_a_lone_docstring(count_tokens):
    text = 'def f():\n    """Doc."""\n\nx = 1\n'
    offer = code_actions.offers(_document(text), _range(0, 0, 0, 0))[0]
    gap = code_actions.gap(_document(text), offer, count_tokens, Settings())
    assert gap.prefix == 'def f():\n    """Doc."""\n    ' and gap.suffix == "\n\nx = 1\n"
    assert gap.max_tokens == Settings().model.max_tokens and gap.replaced == ""
    request = code_actions.engine_request(gap, Settings())
    assert (request.prefix, request.suffix, request.num_candidates) == (gap.prefix, gap.suffix, 1)


def test_multi_line_selections_keep_their_lines_and_may_dedent():
    post = code_actions.Context("def f(x):\n    ", "\n")
    assert single_line in code_actions.rewrite_rules("x + 1", post)
    spans = code_actions.rewrite_rules("if x:\n        y()\n    z()", post)
    assert single_line not in spans and stop_at_dedent in spans
    dedents = code_actions.rewrite_rules("x\n\ny = 2", post)
    assert single_line not in dedents and stop_at_dedent not in dedents


def _gap(replaced: str, prefix: str = "x = ", suffix: str = "\n", rules=code_actions.RULES):
    return code_actions.Gap(prefix, suffix, replaced, 16, rules)


@pytest.mark.parametrize(
    ("model_text", "replaced", "expected"),
    [
        ("a + b  \n", "a - b", "a + b"),  # the selection ended without a line break
        ("a + b", "a - b\n", "a + b\n"),  # the selection's line break stays
        ("a - b", "a - b", None),  # no change
        ("  \n", "a - b", None),  # nothing left
        ("    return 1\n\n", "pass", "    return 1"),  # a fill ends where `pass` ended
        ("pass", "pass", None),
    ],
)
def test_replacement(model_text, replaced, expected):
    assert code_actions.replacement(model_text, _gap(replaced)) == expected


def test_replacement_uses_the_inline_rules():
    mid_line = _gap("b", prefix="total = f(a, ", suffix=") + g(2)\n")
    assert code_actions.replacement("c) + g(2)\nmore()", mid_line) == "c"
    fill = _gap("pass", prefix="def f():\n    ", suffix="\n\nx = 1\n")
    body = "y = 2\n    return y\ndef g():\n    pass"
    assert code_actions.replacement(body, fill) == "y = 2\n    return y"


def test_an_edit_range_counts_utf16_units():
    text = 'def f():\n    """😀 é."""\n    pass\n'
    document = _document(text)
    [offer] = code_actions.offers(document, _range(0, 0, 0, 0))
    action = code_actions.action(document, offer, "return 1")
    [edit] = action.edit.changes["file:///w/a.py"]
    assert edit.range == _range(2, 4, 2, 8) and edit.new_text == "return 1"
    docstring_only = _document('def f():\n    """😀"""\n')
    [insert] = code_actions.offers(docstring_only, _range(0, 0, 0, 0))
    [edit] = code_actions.action(docstring_only, insert, "return 1").edit.changes["file:///w/a.py"]
    assert edit.range == _range(1, 12, 1, 12) and edit.new_text == "\n    return 1"


def test_lazy_action_data_round_trips_and_is_checked():
    document = _document(STUB)
    [offer] = code_actions.offers(document, _range(1, 4, 1, 4))
    listed = code_actions.action(document, offer)
    assert listed.edit is None and code_actions.offer_from(listed.data) == offer
    for bad in (None, {"kind": "fill"}, {**listed.data, "start": "0"}, {**listed.data, "end": -1}):
        with pytest.raises(InputError, match="not a diffill action"):
            code_actions.offer_from(bad)
    code_actions.check_current(document, offer)
    with pytest.raises(JsonRpcContentModified, match="version 3, now 4"):
        code_actions.check_current(_document(STUB, version=4), offer)


def _capabilities(data: bool, properties: list[str] | None) -> types.ClientCapabilities:
    resolve = types.ClientCodeActionResolveOptions(properties) if properties is not None else None
    action = types.CodeActionClientCapabilities(data_support=data, resolve_support=resolve)
    return types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(code_action=action)
    )


@pytest.mark.parametrize(
    ("capabilities", "lazy"),
    [
        (types.ClientCapabilities(), False),
        (_capabilities(True, ["edit", "command"]), True),
        (_capabilities(True, ["command"]), False),
        (_capabilities(False, ["edit"]), False),
        (_capabilities(True, None), False),
    ],
)
def test_resolves_lazily_only_with_edit_resolve_and_data(capabilities, lazy):
    assert code_actions.resolves_lazily(capabilities) is lazy
