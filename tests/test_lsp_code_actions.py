"""textDocument/codeAction and codeAction/resolve through the real `diffill lsp` command:
rewrite a selection, fill a placeholder function body."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from lsp_harness import (
    DIFFILL,
    capabilities,
    inline_params,
    serving_model,
    status,
    trained_model,
)
from lsp_harness import wait_loaded as wait_for_model
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcContentModified,
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcRequestCancelled,
)
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

from lsp_server import code_actions
from lsp_server.config import Settings

URI = "file:///w/a.py"
REWRITE, FILL = code_actions.TITLES["rewrite"], code_actions.TITLES["fill"]
STUB = 'def mean(values):\n    """The average of values."""\n    pass\n\n\nprint(mean([1, 2]))\n'


async def start(
    client: LanguageClient, model: Path, resolve: bool, **model_settings: object
) -> types.InitializeResult:
    """Initialize as a client that resolves code actions lazily, or one that does not."""
    caps = capabilities()
    caps.text_document.code_action = types.CodeActionClientCapabilities(
        data_support=resolve,
        resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"])
        if resolve
        else None,
    )
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=caps,
            initialization_options={"model": {"path": str(model), **model_settings}},
        )
    )
    await wait_for_model(client)
    return result


def open_text(client: LanguageClient, text: str, version: int = 1) -> None:
    item = types.TextDocumentItem(uri=URI, language_id="python", version=version, text=text)
    client.text_document_did_open(types.DidOpenTextDocumentParams(item))


def span(text: str, part: str) -> types.Range:
    """The range of the first `part` in `text` (ASCII text: characters are utf-16 units)."""
    start = text.index(part)
    return types.Range(_position(text, start), _position(text, start + len(part)))


def _position(text: str, offset: int) -> types.Position:
    line_start = text.rfind("\n", 0, offset) + 1
    return types.Position(text.count("\n", 0, offset), offset - line_start)


async def actions(client: LanguageClient, where: types.Range, **context: object) -> list:
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(URI),
        range=where,
        context=types.CodeActionContext(diagnostics=[], **context),
    )
    return await client.text_document_code_action_async(params) or []


def applied(text: str, edit: types.WorkspaceEdit) -> str:
    """`text` after the edit's one change to URI."""
    [change] = edit.changes[URI]
    start, end = (_offset(text, p) for p in (change.range.start, change.range.end))
    return text[:start] + change.new_text + text[end:]


def _offset(text: str, position: types.Position) -> int:
    lines = text.split("\n")
    return sum(len(line) + 1 for line in lines[: position.line]) + position.character


def engine_text(prefix: str, suffix: str, max_tokens: int) -> str:
    """What `diffill complete` answers for the same gap, to compare with the edit."""
    request = json.dumps({"prefix": prefix, "suffix": suffix})
    command = [*DIFFILL[:-1], "complete", "-", "--json", "--max-tokens", str(max_tokens)]
    command += ["--model", str(serving_model()), "--steps", str(Settings().model.steps)]
    done = subprocess.run(command, input=request, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["completion"]


async def test_capability_is_advertised(client):
    result = await start(client, serving_model(), resolve=True)
    options = result.capabilities.code_action_provider
    assert list(options.code_action_kinds) == [types.CodeActionKind.RefactorRewrite]
    assert options.resolve_provider is True


async def test_selection_is_rewritten_lazily(client):
    await start(client, trained_model(), resolve=True)
    text = TRAIN_PREFIX + "a - b" + TRAIN_SUFFIX
    open_text(client, text)
    [listed] = await actions(client, span(text, "a - b"))
    assert (listed.title, listed.kind, listed.edit) == (
        REWRITE,
        types.CodeActionKind.RefactorRewrite,
        None,
    )
    resolved = await client.code_action_resolve_async(listed)
    [change] = resolved.edit.changes[URI]
    assert change.range == span(text, "a - b")
    assert applied(text, resolved.edit) == TRAIN_PREFIX + TRAIN_MIDDLE + TRAIN_SUFFIX


async def test_selection_is_rewritten_eagerly_without_resolve_support(client):
    await start(client, trained_model(), resolve=False)
    text = TRAIN_PREFIX + "a - b" + TRAIN_SUFFIX
    open_text(client, text)
    [action] = await actions(client, span(text, "a - b"))
    assert action.title == REWRITE and action.data is None
    assert applied(text, action.edit) == TRAIN_PREFIX + TRAIN_MIDDLE + TRAIN_SUFFIX
    automatic = types.CodeActionTriggerKind.Automatic
    assert await actions(client, span(text, "a - b"), trigger_kind=automatic) == []


async def test_rewrite_that_changes_nothing_is_not_offered(client):
    await start(client, trained_model(), resolve=False)
    text = TRAIN_PREFIX + TRAIN_MIDDLE + TRAIN_SUFFIX
    open_text(client, text)
    assert await actions(client, span(text, TRAIN_MIDDLE)) == []


async def test_resolved_rewrite_that_changes_nothing_edits_nothing_and_says_so(client):
    await start(client, trained_model(), resolve=True)
    text = TRAIN_PREFIX + TRAIN_MIDDLE + TRAIN_SUFFIX
    open_text(client, text)
    [listed] = await actions(client, span(text, TRAIN_MIDDLE))
    resolved = await client.code_action_resolve_async(listed)
    assert resolved.title == REWRITE and not resolved.edit.changes
    assert [m.message for m in client.messages] == [
        f"diffill: {REWRITE}: the model proposed no change"
    ]


async def test_placeholder_body_is_filled_by_the_embedded_model(client):
    await start(client, serving_model(), resolve=True)
    open_text(client, STUB)
    cursor = span(STUB, "values):").start
    [listed] = await actions(client, types.Range(cursor, cursor))
    assert listed.title == FILL and listed.edit is None
    resolved = await client.code_action_resolve_async(listed)
    [change] = resolved.edit.changes[URI]
    assert change.range == span(STUB, "pass")
    prefix, suffix = STUB.split("pass")
    raw = engine_text(prefix, suffix, max_tokens=64)
    gap = code_actions.Gap(prefix, suffix, "pass", 64, code_actions.RULES)
    assert change.new_text == code_actions.replacement(raw, gap)
    assert all(line.startswith("    ") for line in change.new_text.split("\n")[1:] if line.strip())


async def test_both_actions_inside_a_stub_with_a_selection(client):
    await start(client, serving_model(), resolve=True)
    open_text(client, STUB)
    listed = await actions(client, span(STUB, "values):"))
    assert sorted(action.title for action in listed) == sorted([REWRITE, FILL])
    other_kind = [types.CodeActionKind.QuickFix]
    assert await actions(client, span(STUB, "values):"), only=other_kind) == []


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (types.Range(types.Position(0, 0), types.Position(40, 0)), "position line 40 is past"),
        (types.Range(types.Position(1, 0), types.Position(1, 99)), "character 99 is past the end"),
        (types.Range(types.Position(1, 4), types.Position(0, 0)), "range end 0:0 is before"),
    ],
)
async def test_bad_range_is_invalid_params_and_the_server_answers_next(client, where, message):
    await start(client, trained_model(), resolve=True)
    text = TRAIN_PREFIX + "a - b" + TRAIN_SUFFIX
    open_text(client, text)
    with pytest.raises(JsonRpcInvalidParams, match=message):
        await actions(client, where)
    assert [action.title for action in await actions(client, span(text, "a - b"))] == [REWRITE]


async def test_resolve_of_a_stale_or_foreign_action_is_refused(client):
    await start(client, trained_model(), resolve=True)
    text = TRAIN_PREFIX + "a - b" + TRAIN_SUFFIX
    open_text(client, text)
    [listed] = await actions(client, span(text, "a - b"))
    foreign = types.CodeAction(title="x", data={"kind": "delete-everything"})
    with pytest.raises(JsonRpcInvalidParams, match="not a diffill action"):
        await client.code_action_resolve_async(foreign)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="x = 1\n")],
        )
    )
    with pytest.raises(JsonRpcException, match="version 1, now 2") as stale:
        await client.code_action_resolve_async(listed)
    assert stale.value.code == JsonRpcContentModified.CODE


async def test_no_actions_while_the_model_loads(client):
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            initialization_options={"model": {"path": str(serving_model())}},
        )
    )
    open_text(client, STUB)
    assert await actions(client, span(STUB, "values")) == []
    assert (await status(client)).state == "loading"
    await wait_for_model(client)
    ready = await actions(client, span(STUB, "values"))
    assert FILL in [action.title for action in ready]  # computed at once: no resolve support


def _send(client: LanguageClient, method: str, params: object, msg_id: str):
    """Send now (pytest-lsp's async variant would send only once awaited)."""
    return asyncio.wrap_future(client.protocol.send_request(method, params, msg_id=msg_id))


async def test_cancel_stops_a_resolve_and_completions_run_beside_actions(client):
    """Random weights in `ar` mode never stop early: a 64-token run is still going when
    the cancel lands."""
    await start(client, trained_model(0), resolve=True, mode="ar", maxTokens=64)
    open_text(client, STUB)
    [listed] = await actions(client, types.Range(*[span(STUB, "pass").start] * 2))
    running = _send(client, types.CODE_ACTION_RESOLVE, listed, "fill")
    assert (await status(client)).pending == 1  # the run has started on the model thread
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="fill"))
    with pytest.raises(JsonRpcRequestCancelled):
        await running
    resolving = _send(client, types.CODE_ACTION_RESOLVE, listed, "again")
    completing = _send(
        client,
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        inline_params(URI, span(STUB, "pass").end),
        "inline",
    )
    resolved, completed = await asyncio.gather(resolving, completing)
    assert resolved.edit is not None and completed.items is not None
    assert (await status(client)).stoppedRuns == 1
