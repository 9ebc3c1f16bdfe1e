"""Property-based fuzzing of the LSP surface, through the real `diffill lsp` process over stdio.

Two properties, each over one server process reused by every example:

- incremental edits (UTF-16 or UTF-8 positions, astral characters with positions inside their
  surrogate pairs, CRLF and lone CR, ranges past the end of lines and of the document) leave
  the server holding exactly the text of a reference model written from the spec; compared
  through `diffill/debug/document`;
- random sequences of open, change, completion, inline completion, code action, resolve,
  cancel, configuration, close, unknown methods, invalid params and undecodable frames: every
  request is answered (a result or a JSON-RPC error, never silence) and the process lives.

`make test` runs a fixed-seed slice (the `ci` profile); `make fuzz` runs the `fuzz` profile,
FUZZ_EXAMPLES examples per property with a fresh seed.
"""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsp_harness import trained_model
from lsp_stdio import StdioServer

PROFILE = os.environ.get("DIFFILL_FUZZ", "ci")
EXAMPLES = {"ci": 40, "fuzz": int(os.environ.get("FUZZ_EXAMPLES", "1000"))}[PROFILE]
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=PROFILE == "ci",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PIECES = [
    *("a", "b", "x = 1", " ", "    ", "\t", "(", ")", ":", "#", "def f():", "é", "中"),
    *("😀", "𝄞", "\n", "\n", "\r\n", "\r\n", "\r", "\u2028", "\x0c", "\x85", "\x0b"),
]
TEXTS = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)
UNITS = {"utf-16": lambda c: 2 if ord(c) > 0xFFFF else 1, "utf-8": lambda c: len(c.encode())}
_uris = itertools.count()


# --- the reference document: LSP's rules, written out --------------------------------------


def reference_lines(text: str) -> list[tuple[int, int]]:
    """(start, end of text) of each line; only \\n, \\r\\n and \\r end a line."""
    lines, start, i = [], 0, 0
    while i < len(text):
        if text[i] in "\r\n":
            lines.append((start, i))
            i += 2 if text[i : i + 2] == "\r\n" else 1
            start = i
        else:
            i += 1
    return [*lines, (start, len(text))]


def reference_offset(text: str, line: int, character: int, units) -> int:
    """Past the last line: the end; past a line's text: its end; inside a character: after it."""
    lines = reference_lines(text)
    if line >= len(lines):
        return len(text)
    start, end = lines[line]
    seen = 0
    for i in range(start, end):
        if seen >= character:
            return i
        seen += units(text[i])
    return end


def reference_edit(text: str, edit: dict, units) -> str:
    a, b = (reference_offset(text, p["line"], p["character"], units) for p in edit["range"])
    a, b = min(a, b), max(a, b)
    return text[:a] + edit["text"] + text[b:]


@st.composite
def positions(draw, text: str, units) -> dict:
    """Anywhere, and a little past the end of lines and of the document."""
    lines = reference_lines(text)
    line = draw(st.integers(0, len(lines) + 1))
    start, end = lines[line] if line < len(lines) else (0, 0)
    width = sum(units(c) for c in text[start:end])
    return {"line": line, "character": draw(st.integers(0, width + 2))}


@st.composite
def edits(draw, text: str, units) -> dict:
    return {
        "range": [draw(positions(text, units)), draw(positions(text, units))],
        "text": draw(TEXTS),
    }


def to_range(edit: dict) -> dict:
    start, end = edit["range"]
    return {"start": start, "end": end}


# --- the server ------------------------------------------------------------------------------


def served(encoding: str) -> StdioServer:
    server = StdioServer()
    server.initialize(
        {"model": {"path": str(trained_model())}},
        {"positionEncodings": [encoding]},
    )
    server.wait_ready()
    return server


@pytest.fixture(scope="module", params=["utf-16", "utf-8"])
def server(request):
    server = served(request.param)
    server.encoding = server.capabilities["positionEncoding"]
    yield server
    assert server.close() == 0, server.log()


def open_document(server: StdioServer, text: str, language: str = "python") -> str:
    uri = f"file:///fuzz/doc{next(_uris)}.py"
    item = {"uri": uri, "languageId": language, "version": 1, "text": text}
    server.notify("textDocument/didOpen", {"textDocument": item})
    return uri


def held_text(server: StdioServer, uri: str) -> str:
    return server.result("diffill/debug/document", {"uri": uri})["text"]


@FUZZ
@given(data=st.data())
def test_incremental_edits_keep_the_clients_text(server, data):
    units = UNITS[server.encoding]
    text = data.draw(TEXTS, "text")
    uri = open_document(server, text)
    for version in range(2, 2 + data.draw(st.integers(1, 6), "notifications")):
        changes = []
        for _ in range(data.draw(st.integers(1, 3), "changes")):
            edit = data.draw(edits(text, units))
            text = reference_edit(text, edit, units)
            changes.append({"range": to_range(edit), "text": edit["text"]})
        identifier = {"uri": uri, "version": version}
        server.notify(
            "textDocument/didChange", {"textDocument": identifier, "contentChanges": changes}
        )
    assert held_text(server, uri) == text
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
