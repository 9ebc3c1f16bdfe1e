"""Positions with astral characters (emoji), in utf-16 (the default) and utf-8 when offered.

An incremental edit deletes two emoji right before the cursor; the line must end up exactly
`    return ` (checked by the line width the server accepts) and complete like the plain file.
"""

from __future__ import annotations

import pytest
from lsp_harness import inline_params, open_doc, start, trained_model
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

EMOJI = "😀🐍"  # both outside the Basic Multilingual Plane
UNITS = {"utf-16": 4, "utf-8": 8}  # code units the two emoji take in each encoding


def _ask(client: LanguageClient, line: int, character: int):
    return client.text_document_inline_completion_async(
        inline_params("file:///w/e.py", types.Position(line, character))
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
async def test_edit_after_emoji_lands_in_the_right_place(client, encoding):
    await start(client, trained_model(), encodings=[encoding])
    cursor = open_doc(
        client, TRAIN_PREFIX + EMOJI + "║" + TRAIN_SUFFIX, "file:///w/e.py", encoding=encoding
    )
    start_col = cursor.character - UNITS[encoding]
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(version=2, uri="file:///w/e.py"),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(cursor.line, start_col), cursor), text=""
                )
            ],
        )
    )
    with pytest.raises(JsonRpcInvalidParams, match=f"past the end of line {cursor.line}"):
        await _ask(client, cursor.line, start_col + 1)  # the emoji are gone: nothing there
    result = await _ask(client, cursor.line, start_col)
    assert [item.insert_text for item in result.items] == [TRAIN_MIDDLE]
    assert result.items[0].range.start.character == start_col


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
async def test_line_width_is_counted_in_the_negotiated_units(client, encoding):
    await start(client, trained_model(), encodings=[encoding])
    cursor = open_doc(client, f"s = '{EMOJI}'║\n", "file:///w/e.py", encoding=encoding)
    assert cursor.character == 6 + UNITS[encoding]
    await _ask(client, 0, cursor.character)  # the end of the line is a valid position
    with pytest.raises(JsonRpcInvalidParams, match=f"{cursor.character} {encoding} units"):
        await _ask(client, 0, cursor.character + 1)
