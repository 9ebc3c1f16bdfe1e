"""Requests that arrive while the model loads, through the real `diffill lsp` command: an
Invoked one waits for the model, up to `loadWaitMs`; an Automatic one answers empty at once.

The torch runtime loads for seconds (importing torch), so the requests surely arrive first.
"""

from __future__ import annotations

from lsp_harness import EMBEDDED, capabilities, inline_params, open_doc, status, wait_loaded
from lsprotocol import types

OBVIOUS = "def fibonacci(n):\n    if n < 2:\n        return n\n    return ║\n"
INVOKED = types.InlineCompletionTriggerKind.Invoked


async def _initialize(client, inline: bool = True, **settings: object) -> types.Position:
    """Initialize with the embedded model on torch, without waiting for it to load."""
    options = {"model": {"path": str(EMBEDDED), "runtime": "torch"}, **settings}
    await client.initialize_session(
        types.InitializeParams(capabilities=capabilities(inline), initialization_options=options)
    )
    return open_doc(client, OBVIOUS)


async def test_invoked_waits_for_the_model_and_automatic_does_not(client):
    position = await _initialize(client)
    automatic = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position)
    )
    assert len(automatic.items) == 0 and (await status(client)).state == "loading"
    invoked = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position, INVOKED)
    )
    assert len(invoked.items) >= 1 and (await status(client)).state == "ready"


async def test_invoked_gives_up_after_load_wait_ms(client):
    position = await _initialize(client, loadWaitMs=0)
    invoked = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position, INVOKED)
    )
    assert len(invoked.items) == 0 and (await status(client)).state == "loading"
    await wait_loaded(client)


async def test_invoked_completion_list_request_waits_too(client):
    position = await _initialize(client, inline=False)
    params = types.CompletionParams(
        types.TextDocumentIdentifier("file:///w/a.py"),
        position,
        context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
    )
    answer = await client.text_document_completion_async(params)
    assert len(answer.items) == 1 and (await status(client)).state == "ready"
