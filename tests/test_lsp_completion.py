"""textDocument/completion, the fallback for clients without inline completion (Helix)."""

from __future__ import annotations

from lsp_harness import open_doc, serving_model, start, trained_model
from lsprotocol import types
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX


async def test_one_item_inserts_the_whole_suggestion(client):
    result = await start(client, trained_model(), inline=False)
    assert result.capabilities.completion_provider is not None
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    answer = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier("file:///w/a.py"), position)
    )
    assert answer.is_incomplete and len(answer.items) == 1
    item = answer.items[0]
    assert item.label == TRAIN_MIDDLE.split("\n")[0]
    assert item.text_edit.new_text == TRAIN_MIDDLE
    assert item.text_edit.range == types.Range(position, position)
    assert item.insert_text_format == types.InsertTextFormat.PlainText
    assert item.command.command == "diffill.accepted"


async def test_multi_line_label_shows_the_first_line(client):
    await start(client, trained_model(), inline=False)
    text = "def add(a, b):\n    ║"
    position = open_doc(client, text)
    answer = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier("file:///w/a.py"), position)
    )
    for item in answer.items:
        first = item.text_edit.new_text.strip("\n").split("\n")[0].strip()
        assert item.label.rstrip("…") == first[:60] and "\n" not in item.label


async def test_embedded_model_fills_the_fallback_item(client):
    await start(client, serving_model(), inline=False)
    position = open_doc(client, "def fibonacci(n):\n    if n < 2:\n        return n\n    return ║")
    answer = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier("file:///w/a.py"), position)
    )
    (item,) = answer.items
    assert item.text_edit.new_text.strip() and item.label.strip()
    assert item.text_edit.range == types.Range(position, position)


async def test_clients_with_inline_completion_get_an_empty_list(client):
    await start(client, trained_model(), inline=True)
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    answer = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier("file:///w/a.py"), position)
    )
    assert len(answer.items) == 0  # the suggestion shows as ghost text instead
