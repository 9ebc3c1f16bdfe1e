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
EXAMPLES = {"ci": 100, "fuzz": int(os.environ.get("FUZZ_EXAMPLES", "1000"))}[PROFILE]
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


# --- random message sequences ---------------------------------------------------------------

TRIGGERS = st.sampled_from([1, 2, 0, 7, "x", None])  # Invoked, Automatic, then invalid
JUNK = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
SETTING_VALUES = {
    ("model", "steps"): st.one_of(st.integers(-2, 20), JUNK),
    ("model", "maxTokens"): st.one_of(st.integers(0, 80), JUNK),
    ("model", "mode"): st.sampled_from(["diffusion", "ar", "bogus", 3]),
    ("model", "threshold"): st.one_of(st.one_of(st.floats(-1, 2), st.just(float("nan"))), JUNK),
    ("context", "budgetTokens"): st.one_of(st.integers(0, 5000), JUNK),
    ("context", "suffixShare"): st.one_of(st.floats(-1, 2), st.just(float("nan"))),
    ("context", "prepareDelayMs"): st.integers(-5, 50),
    ("alternatives",): st.one_of(st.integers(-1, 12), JUNK),
    ("enable",): st.one_of(st.booleans(), JUNK),
    ("extent",): st.sampled_from(["auto", "line", "block", "paragraph", 1]),
    ("languages",): st.one_of(st.just({"python": False}), JUNK),
}


@st.composite
def configuration(draw, model_path: str) -> dict:
    """Random settings, valid and invalid, always on the fuzzed model (a reload is not what
    is fuzzed here; tests/test_lsp_model_reload.py is about that)."""
    chosen = draw(st.lists(st.sampled_from(sorted(SETTING_VALUES)), max_size=4, unique=True))
    settings: dict = {"model": {"path": model_path}}
    for key in chosen:
        *parents, name = key
        node = settings
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = draw(SETTING_VALUES[key])
    return settings


def text_document(uri: str) -> dict:
    return {"uri": uri}


@st.composite
def requests(draw, uri: str, text: str, units) -> tuple[str, object]:
    """One request about `uri` (open or not), with valid or invalid params."""
    where = draw(positions(text, units))
    span = {"start": draw(positions(text, units)), "end": draw(positions(text, units))}
    trigger = draw(TRIGGERS)
    valid = {
        "textDocument/inlineCompletion": {
            "textDocument": text_document(uri),
            "position": where,
            "context": {"triggerKind": trigger},
        },
        "textDocument/completion": {
            "textDocument": text_document(uri),
            "position": where,
            "context": {"triggerKind": trigger},
        },
        "textDocument/codeAction": {
            "textDocument": text_document(uri),
            "range": span,
            "context": {"diagnostics": [], "triggerKind": trigger},
        },
        "codeAction/resolve": {
            "title": "x",
            "data": draw(st.one_of(JUNK, st.fixed_dictionaries({"kind": st.just("fill")}))),
        },
        "diffill/status": {},
        "diffill/debug/document": {"uri": uri},
        "workspace/executeCommand": {
            "command": draw(st.sampled_from(["diffill.accepted", "nope"])),
            "arguments": [{"uri": uri, "chars": 1}],
        },
        "diffill/unknown": {},
    }
    method = draw(st.sampled_from(sorted(valid)))
    params = valid[method]
    if draw(st.booleans()):  # break it: junk for the whole params or for one field
        params = draw(JUNK) if draw(st.booleans()) or not params else {**params}
        if isinstance(params, dict) and params:
            params[draw(st.sampled_from(sorted(params)))] = draw(JUNK)
    return method, params


@st.composite
def notifications(draw, uri: str, text: str, units) -> tuple[str, object]:
    """didChange with a valid edit, or a broken didOpen/didChange/didClose/configuration."""
    method = draw(
        st.sampled_from(["textDocument/didChange", "textDocument/didOpen", "$/cancelRequest"])
    )
    broken = {"textDocument": draw(JUNK), "contentChanges": draw(JUNK), "id": draw(JUNK)}
    return method, draw(st.sampled_from([None, broken, {}, []]))


FRAMES = [
    b'{"jsonrpc": "2.0", "id": 9, "method": ',  # cut short
    b"\xff\xfe not json",
    b'{"jsonrpc": "2.0", "id": {"an": "object"}, "method": "diffill/status"}',
    b'{"jsonrpc": "2.0", "method": 5}',
    b"[]",
]


class Session:
    """The client side of one fuzzed sequence: its documents as the client sees them, and the
    ids it sent."""

    def __init__(self, server: StdioServer, model_path: str) -> None:
        self.server, self.model_path = server, model_path
        self.units = UNITS[server.encoding]
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self.sent: list[object] = []

    def step(self, data, uris: list[str]) -> None:
        uri = data.draw(st.sampled_from(uris), "uri")
        text = self.texts.get(uri, "")
        action = data.draw(st.sampled_from(ACTIONS), "action")
        getattr(self, action)(data, uri, text)

    def open(self, data, uri: str, text: str) -> None:
        if uri in self.texts:
            return
        self.texts[uri], self.versions[uri] = data.draw(TEXTS, "text"), 1
        item = {"uri": uri, "languageId": "python", "version": 1, "text": self.texts[uri]}
        self.server.notify("textDocument/didOpen", {"textDocument": item})

    def change(self, data, uri: str, text: str) -> None:
        edit = data.draw(edits(text, self.units), "edit")
        if uri in self.texts:
            self.texts[uri] = reference_edit(text, edit, self.units)
        self.versions[uri] = self.versions.get(uri, 0) + 1
        change = {"range": to_range(edit), "text": edit["text"]}
        identifier = {"uri": uri, "version": self.versions[uri]}
        self.server.notify(
            "textDocument/didChange", {"textDocument": identifier, "contentChanges": [change]}
        )

    def close(self, data, uri: str, text: str) -> None:
        self.texts.pop(uri, None)
        self.server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def request(self, data, uri: str, text: str) -> None:
        method, params = data.draw(requests(uri, text, self.units), "request")
        self.sent.append(self.server.request_later(method, params))

    def cancel(self, data, uri: str, text: str) -> None:
        if self.sent:
            target = data.draw(st.sampled_from(self.sent), "cancelled")
            self.server.notify("$/cancelRequest", {"id": target})

    def configure(self, data, uri: str, text: str) -> None:
        settings = data.draw(configuration(self.model_path), "settings")
        self.server.notify("workspace/didChangeConfiguration", {"settings": settings})

    def broken_notification(self, data, uri: str, text: str) -> None:
        self.server.notify(*data.draw(notifications(uri, text, self.units), "notification"))

    def broken_frame(self, data, uri: str, text: str) -> None:
        body = data.draw(st.sampled_from(FRAMES), "frame")
        self.server.send_bytes(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def finish(self) -> None:
        """Every request answered with a result or an error; the documents as the client
        has them; settings back to the fuzz defaults; everything closed."""
        for id_ in self.sent:
            answer = self.server.answer(id_)
            assert "result" in answer or isinstance(answer["error"]["code"], int), answer
        for uri, text in self.texts.items():
            assert held_text(self.server, uri) == text, uri
        settings = {"model": {"path": self.model_path}}
        self.server.notify("workspace/didChangeConfiguration", {"settings": settings})
        for uri in self.texts:
            self.server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        assert self.server.alive(), self.server.log()


ACTIONS = [
    *("open", "open", "change", "change", "change", "request", "request", "request"),
    *("request", "cancel", "configure", "close", "broken_notification", "broken_frame"),
]


@FUZZ
@given(data=st.data())
def test_every_request_is_answered_and_the_server_lives(server, data):
    session = Session(server, str(trained_model()))
    uris = [f"file:///fuzz/seq{next(_uris)}-{i}.py" for i in range(2)]
    for _ in range(data.draw(st.integers(1, 25), "steps")):
        session.step(data, uris)
    session.finish()
