"""textDocument/inlineCompletion through the real `diffill lsp` command."""

from __future__ import annotations

from lsp_harness import (
    EMBEDDED,
    capabilities,
    inline_params,
    open_doc,
    serving_model,
    start,
    status,
    trained_model,
    wait_loaded,
)
from lsprotocol import types
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX


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


OBVIOUS = "def fibonacci(n):\n    if n < 2:\n        return n\n    return ║\n"


async def test_embedded_model_serves_both_trigger_kinds(client):
    await start(client, serving_model(), settings={"alternatives": 2})
    position = open_doc(client, OBVIOUS)
    automatic = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position)
    )
    invoked = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position, types.InlineCompletionTriggerKind.Invoked)
    )
    assert len(automatic.items) == 1 and 1 <= len(invoked.items) <= 2
    for item in (*automatic.items, *invoked.items):
        assert item.insert_text.strip() and isinstance(item.insert_text, str)
        assert item.range.start == item.range.end == position
    assert len({item.insert_text for item in invoked.items}) == len(invoked.items)


async def test_requests_while_the_model_loads_get_an_empty_answer(client):
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(), initialization_options={"model": {"path": str(EMBEDDED)}}
        )
    )
    position = open_doc(client, OBVIOUS)
    early = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position)
    )
    assert len(early.items) == 0 and (await status(client)).state == "loading"
    await wait_loaded(client)
    ready = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position)
    )
    assert len(ready.items) == 1


async def test_the_end_of_an_ordinary_line_gets_one_line_unless_the_setting_says_block(client):
    """At the end of this line the embedded model writes several lines (as after `ret`, the
    five-line ghost block of issue 16, did with earlier legs); the extent rules show one, and
    the `extent` setting `block` brings them back. Which lines a leg writes changes with its
    weights, so a new leg may need another line here."""
    model = serving_model()
    await start(client, model)
    position = open_doc(client, "def main():\n    args = parse_args()║\n")
    params = inline_params("file:///w/a.py", position)
    line = await client.text_document_inline_completion_async(params)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"extent": "block", "model": {"path": str(model)}}
        )
    )
    block = await client.text_document_inline_completion_async(params)
    assert line.items and "\n" not in line.items[0].insert_text
    assert block.items and "\n" in block.items[0].insert_text
