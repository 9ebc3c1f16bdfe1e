"""Bad input gets a proper LSP error naming the problem, and the server answers the next
request; a storm of edits, requests and cancellations leaves nothing behind."""

from __future__ import annotations

import asyncio

import pytest
from lsp_harness import inline_params, open_doc, start, status, trained_model
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcRequestCancelled
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

URI = "file:///w/a.py"
INLINE = types.TEXT_DOCUMENT_INLINE_COMPLETION


def _params(line: int, character: int, uri: str = URI) -> types.InlineCompletionParams:
    return inline_params(uri, types.Position(line, character))


async def _still_completes(client: LanguageClient, position: types.Position) -> None:
    result = await client.text_document_inline_completion_async(
        _params(position.line, position.character)
    )
    assert [item.insert_text for item in result.items] == [TRAIN_MIDDLE]


@pytest.fixture
async def ready(client):
    await start(client, trained_model())
    return open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)


@pytest.mark.parametrize(
    ("line", "character", "uri", "message"),
    [
        (0, 0, "file:///w/never-opened.py", "document not open: file:///w/never-opened.py"),
        (1, 40, URI, "position character 40 is past the end of line 1"),
        (99, 0, URI, "position line 99 is past the end of the document"),
    ],
)
async def test_bad_positions_and_documents(client, ready, line, character, uri, message):
    with pytest.raises(JsonRpcInvalidParams, match=message):
        await client.text_document_inline_completion_async(_params(line, character, uri))
    await _still_completes(client, ready)


async def test_invalid_params_name_the_bad_field(client, ready):
    broken = _params(0, 0)
    object.__setattr__(broken.position, "line", -1)  # past the validator: LSP lines are unsigned
    with pytest.raises(JsonRpcInvalidParams, match=r"invalid value @ request\.params\.position"):
        await client.text_document_inline_completion_async(broken)
    await _still_completes(client, ready)


async def test_malformed_message_is_survived(client, ready):
    body = b'{"jsonrpc": "2.0", "id": 77, "method": '
    client.protocol.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await _still_completes(client, ready)


async def test_huge_and_binary_documents_are_refused(client, ready):
    huge = open_doc(client, "x = 1\n" * 900_000 + "║", "file:///w/huge.py")  # 5.4 MB
    with pytest.raises(JsonRpcInvalidParams, match=r"over the 2\.0 MB limit"):
        await client.text_document_inline_completion_async(
            _params(huge.line, huge.character, "file:///w/huge.py")
        )
    binary = open_doc(client, "\x00\x01ELF║", "file:///w/a.bin")
    with pytest.raises(JsonRpcInvalidParams, match="looks binary"):
        await client.text_document_inline_completion_async(
            _params(binary.line, binary.character, "file:///w/a.bin")
        )
    await _still_completes(client, ready)


def _edit(version: int, start: types.Position, end: types.Position, text: str):
    change = types.TextDocumentContentChangePartial(range=types.Range(start, end), text=text)
    return types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(version=version, uri=URI),
        content_changes=[change],
    )


async def test_storm_of_edits_requests_and_cancels_leaves_nothing_behind(client, ready):
    await _still_completes(client, ready)  # a first run, so the model thread exists
    before = await status(client)
    tail = ready.line + TRAIN_SUFFIX.count("\n")  # the empty last line, inside the suffix window
    answers = []
    for i in range(200):  # each edit makes a new context (no cache hits); the last undoes all
        at, undo = types.Position(tail, i), types.Position(tail, 0)
        edit = _edit(i + 2, undo, at, "") if i == 199 else _edit(i + 2, at, at, "z")
        client.text_document_did_change(edit)
        sent = client.protocol.send_request(INLINE, _params(ready.line, ready.character), f"s{i}")
        answers.append(asyncio.wrap_future(sent))  # sent now, in order with the edits
        if i % 3 == 0 and i < 199:
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=f"s{i}"))
    results = await asyncio.gather(*answers, return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(e, JsonRpcRequestCancelled) for e in errors), errors[:3]
    assert errors  # a burst of 200 outruns the model thread: older requests were cancelled
    last = results[-1]
    assert not isinstance(last, Exception) and [i.insert_text for i in last.items] == [TRAIN_MIDDLE]
    after = await status(client)
    assert after.pending == 0 and after.tasks <= before.tasks
