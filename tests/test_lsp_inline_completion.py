"""textDocument/inlineCompletion through the real `diffill lsp` command."""

from __future__ import annotations

from lsp_harness import inline_params, lsp_fixture, open_doc, serving_model, start, trained_model
from lsprotocol import types
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX


@lsp_fixture()
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_capability_is_advertised(client):
    result = await start(client, serving_model())
    assert isinstance(result.capabilities.inline_completion_provider, types.InlineCompletionOptions)


async def test_trained_gap_is_filled_with_one_item(client):
    await start(client, trained_model())
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    result = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position, types.InlineCompletionTriggerKind.Automatic)
    )
    assert [item.insert_text for item in result.items] == [TRAIN_MIDDLE]
    item = result.items[0]
    assert item.range.start == item.range.end == position
    assert item.command.command == "diffill.accepted"


async def test_invoked_gives_distinct_alternatives(client):
    await start(client, trained_model(), settings={"alternatives": 3})
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    result = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position, types.InlineCompletionTriggerKind.Invoked)
    )
    texts = [item.insert_text for item in result.items]
    assert 1 <= len(texts) <= 3 and len(set(texts)) == len(texts)
    assert texts[0] == TRAIN_MIDDLE  # the greedy candidate comes first


async def test_selected_completion_item_is_extended_over_its_range(client):
    await start(client, trained_model())
    position = open_doc(client, TRAIN_PREFIX + "ad║" + TRAIN_SUFFIX)
    selected = types.SelectedCompletionInfo(
        range=types.Range(types.Position(position.line, position.character - 2), position),
        text="add",
    )
    result = await client.text_document_inline_completion_async(
        inline_params(
            "file:///w/a.py",
            position,
            types.InlineCompletionTriggerKind.Automatic,
            selected_completion_info=selected,
        )
    )
    assert result.items, "the model proposes a continuation of the selected item"
    for item in result.items:
        assert item.insert_text.startswith("add") and len(item.insert_text) > 3
        assert item.range == selected.range


async def test_disabled_language_gets_no_items(client):
    await start(client, trained_model(), settings={"languages": {"markdown": False}})
    automatic = types.InlineCompletionTriggerKind.Automatic
    for uri, language in (("file:///w/a.md", "markdown"), ("file:///w/a.py", "python")):
        position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX, uri, language)
    markdown = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.md", position, automatic)
    )
    python = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position, automatic)
    )
    assert len(markdown.items) == 0 and len(python.items) == 1
