"""textDocument/inlineCompletion through the real `diffill lsp` command."""

from __future__ import annotations

import pytest
from lsp_harness import lsp_fixture, open_doc, serving_model, start, trained_model
from lsprotocol import types
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX


@lsp_fixture()
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def _params(uri: str, position: types.Position, kind: types.InlineCompletionTriggerKind, **kw):
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position,
        context=types.InlineCompletionContext(trigger_kind=kind, **kw),
    )


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


async def test_capability_is_advertised(client, tmp_root):
    result = await start(client, serving_model(tmp_root))
    assert isinstance(result.capabilities.inline_completion_provider, types.InlineCompletionOptions)


async def test_trained_gap_is_filled_with_one_item(client, tmp_root):
    await start(client, trained_model(tmp_root))
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    result = await client.text_document_inline_completion_async(
        _params("file:///w/a.py", position, types.InlineCompletionTriggerKind.Automatic)
    )
    assert [item.insert_text for item in result.items] == [TRAIN_MIDDLE]
    item = result.items[0]
    assert item.range.start == item.range.end == position
    assert item.command.command == "diffill.accepted"
