"""Checked access to open documents: client positions to text offsets, size and binary limits.

Positions come in the client's negotiated encoding (utf-16 by default, utf-8 when offered);
pygls's position codec converts them. Unlike pygls, which clamps, a position past the end
of a line or of the document is an error here: it means client and server disagree on the
text, and a completion computed from the wrong text would be garbage.
"""

from __future__ import annotations

from lsprotocol import types
from pygls.workspace import TextDocument

from engine.errors import InputError


def checked_document(document: TextDocument | None, uri: str, max_bytes: int) -> TextDocument:
    """`document` (the one open at `uri`), refused when missing, too big or binary."""
    if document is None:
        raise InputError(f"document not open: {uri}")
    size = len(document.source)  # characters: a cheap lower bound of the UTF-8 size
    if size > max_bytes:
        raise InputError(
            f"document {uri} has {size / 1e6:.1f} M characters, over the "
            f"{max_bytes / 1e6:.1f} MB limit (setting maxFileBytes)"
        )
    if "\x00" in document.source:
        raise InputError(f"document {uri} looks binary (it contains NUL characters)")
    return document


def _line_text(line: str) -> str:
    return line.rstrip("\r\n")


def cursor_offset(document: TextDocument, position: types.Position) -> int:
    """Index into document.source of a client position, checked against the text."""
    lines = document.lines
    ends_open = not lines or lines[-1].endswith(("\n", "\r"))
    last_line = len(lines) if ends_open else len(lines) - 1
    if position.line > last_line:
        raise InputError(
            f"position line {position.line} is past the end of the document ({last_line + 1} lines)"
        )
    text = _line_text(lines[position.line]) if position.line < len(lines) else ""
    width = document.position_codec.client_num_units(text)
    if position.character > width:
        raise InputError(
            f"position character {position.character} is past the end of line {position.line} "
            f"({width} {_name(document.position_codec.encoding)} units)"
        )
    before = sum(len(line) for line in lines[: position.line])
    server = document.position_codec.position_from_client_units([text], _on_first_line(position))
    return before + server.character


def _on_first_line(position: types.Position) -> types.Position:
    return types.Position(line=0, character=position.character)


def _name(encoding: object) -> str:
    return str(getattr(encoding, "value", encoding))
