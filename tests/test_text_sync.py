"""LSP's line splitting (lsp_server/text_sync.py): only \\n, \\r\\n and \\r break a line."""

from __future__ import annotations

import pytest

from lsp_server.text_sync import split_lines


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("a", ["a"]),
        ("a\nb\r\nc\rd\n", ["a\n", "b\r\n", "c\r", "d\n"]),
        ("a\r\n\r\n", ["a\r\n", "\r\n"]),
        ("x\x0cy\u2028z\nw", ["x\x0cy\u2028z\n", "w"]),  # form feed, line separator: no break
        ("a\x85b\r", ["a\x85b\r"]),
        ("é\n😀\n", ["é\n", "😀\n"]),
    ],
)
def test_lines_break_only_where_lsp_breaks_them(text: str, lines: list[str]) -> None:
    assert split_lines(text) == lines
    assert "".join(split_lines(text)) == text
