"""Cancellation: `$/cancelRequest` and newer requests for the same document stop the engine
between denoising steps and answer RequestCancelled (-32800).

The model here has random weights (it never stops early) and a 64-token limit in `ar` mode,
so one uncancelled request runs 64 steps: a cancel sent once it has started lands mid-run."""

from __future__ import annotations

import asyncio

import pytest
from lsp_harness import inline_params, open_doc, start, status, trained_model
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient

INLINE = types.TEXT_DOCUMENT_INLINE_COMPLETION
SLOW = {"model": {"mode": "ar", "maxTokens": 64}}
QUICK = {"model": {"mode": "ar", "maxTokens": 8}}


def _send(client: LanguageClient, uri: str, position: types.Position, msg_id: str):
    """Send now (pytest-lsp's async variant would send only once awaited)."""
    params = inline_params(uri, position, types.InlineCompletionTriggerKind.Invoked)
    return asyncio.wrap_future(client.protocol.send_request(INLINE, params, msg_id=msg_id))


async def test_cancel_request_stops_the_engine(client):
    await start(client, trained_model(0), settings=SLOW)
    position = open_doc(client, "def f(x):\n    return ║\n")
    running = _send(client, "file:///w/a.py", position, "slow")
    assert (await status(client)).pending == 1  # the run has started on the model thread
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="slow"))
    with pytest.raises(JsonRpcRequestCancelled):
        await running
    # The single model thread runs jobs in order: once this answer is back, the cancelled
    # run has ended, and it must have ended early on its flag.
    open_doc(client, "x = ║", "file:///w/b.py")
    await _send(client, "file:///w/b.py", types.Position(0, 4), "after")
    state = await status(client)
    assert state.stoppedRuns == 1 and state.pending == 0


async def test_newer_request_for_the_same_document_wins(client):
    await start(client, trained_model(0), settings=SLOW)
    position = open_doc(client, "def f(x):\n    return ║\n")
    older = _send(client, "file:///w/a.py", position, "older")
    assert (await status(client)).pending == 1  # the older run has started
    newer = _send(client, "file:///w/a.py", position, "newer")
    with pytest.raises(JsonRpcRequestCancelled):
        await older
    result = await newer
    assert isinstance(result, types.InlineCompletionList)
    assert (await status(client)).stoppedRuns == 1


async def test_requests_for_other_documents_do_not_cancel_each_other(client):
    await start(client, trained_model(0), settings=QUICK)
    first = open_doc(client, "a = ║", "file:///w/a.py")
    second = open_doc(client, "b = ║", "file:///w/b.py")
    answers = await asyncio.gather(
        _send(client, "file:///w/a.py", first, "a"), _send(client, "file:///w/b.py", second, "b")
    )
    assert all(isinstance(answer, types.InlineCompletionList) for answer in answers)
    assert (await status(client)).stoppedRuns == 0
