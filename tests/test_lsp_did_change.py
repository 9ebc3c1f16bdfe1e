"""didChange pre-encodes the context at the edit position, so that when the completion
request arrives every context token's keys/values are already cached (only canvas steps
remain). Checked through the engine timings `diffill/status` reports."""

from __future__ import annotations

import asyncio

from lsp_harness import inline_params, open_doc, start, status, trained_model
from lsprotocol import types
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_PREFIX, TRAIN_SUFFIX

URI = "file:///w/a.py"


def _type(client: LanguageClient, at: types.Position, text: str, version: int) -> types.Position:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(version=version, uri=URI),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)
            ],
        )
    )
    return types.Position(at.line, at.character + len(text))


async def test_typing_then_asking_reuses_the_pre_encoded_context(client):
    await start(client, trained_model(), settings={"context": {"prepareDelayMs": 0}})
    cursor = open_doc(client, "# notes\n" + TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    cursor = _type(client, cursor, "zz ", 2)
    while (await status(client)).pending:  # until the pre-encoding has run
        await asyncio.sleep(0.01)
    await client.text_document_inline_completion_async(inline_params(URI, cursor))
    engine = (await status(client)).lastEngine
    assert engine.reusedTokens == engine.contextTokens > 0


async def test_a_request_before_the_debounce_ends_encodes_itself(client):
    await start(client, trained_model(), settings={"context": {"prepareDelayMs": 5000}})
    cursor = open_doc(client, "# notes\n" + TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    cursor = _type(client, cursor, "zz ", 2)
    await client.text_document_inline_completion_async(inline_params(URI, cursor))
    state = await status(client)
    assert state.lastEngine.reusedTokens < state.lastEngine.contextTokens
    assert state.pending == 0  # the request dropped the pending pre-encoding


async def test_handled_notifications_leave_nothing_in_flight(client):
    """pygls kept a future for every didChange it handled (a leak of ~1 KB a keystroke)."""
    await start(client, trained_model())
    cursor = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    for version in range(2, 202):
        cursor = _type(client, cursor, "x", version)
    while (await status(client)).pending:
        await asyncio.sleep(0.01)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(URI))
    )
    assert (await status(client)).handling <= 1  # at most the status request itself
