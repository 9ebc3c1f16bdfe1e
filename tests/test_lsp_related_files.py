"""Context beyond the current file, through the real `diffill lsp`: another open document's
chunk reaches the model's context (the engine's context-token count and `diffill/status`
show it), it stays put while the user types so the cached context is reused, and a file
written into the workspace folder after `initialize` becomes a source through the watcher,
with the network blocked."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsp_harness import (
    capabilities,
    inline_params,
    open_doc,
    start,
    status,
    trained_model,
    wait_loaded,
)
from lsprotocol import types
from pytest_lsp import LanguageClient
from test_lsp_offline import guarded  # noqa: F401  (the network-blocked server fixture)
from tiny_model import TRAIN_PREFIX, TRAIN_SUFFIX
from tokenizers import Tokenizer

URI = "file:///w/a.py"
CALC_URI = "file:///w/calc.py"
CALC = (
    "def add(a, b):\n"
    '    """Sum of two numbers, for the report."""\n'
    "    return a + b\n"
    "\n"
    "\n"
    "def report(values):\n"
    "    total = 0\n"
    "    for value in values:\n"
    "        total = add(total, value)\n"
    "    print(total)\n"
)
RENDERED = f"# path: calc.py\n{CALC}\n"
WAIT_S = 60


def _open_calc(client: LanguageClient) -> None:
    item = types.TextDocumentItem(uri=CALC_URI, language_id="python", version=1, text=CALC)
    client.text_document_did_open(types.DidOpenTextDocumentParams(item))


def _tokens(text: str) -> int:
    tokenizer = Tokenizer.from_file(str(trained_model() / "tokenizer.json"))
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


async def test_an_open_documents_chunk_reaches_the_models_context(client):
    await start(client, trained_model())
    _open_calc(client)
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    await client.text_document_inline_completion_async(inline_params(URI, position))
    with_calc = await status(client)
    assert with_calc.otherFiles.picked == ["calc.py:1-10"]
    assert with_calc.otherFiles.sources == ["a.py", "calc.py"]
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(CALC_URI))
    )
    await client.text_document_inline_completion_async(inline_params(URI, position))
    alone = await status(client)
    assert alone.otherFiles.picked == [] and alone.otherFiles.sources == ["a.py"]
    grown = _tokens(RENDERED + TRAIN_PREFIX) - _tokens(TRAIN_PREFIX)
    assert with_calc.lastEngine.contextTokens == alone.lastEngine.contextTokens + grown


async def test_typing_keeps_the_chunk_so_the_cached_context_is_reused(client):
    await start(client, trained_model(), settings={"context": {"prepareDelayMs": 0}})
    _open_calc(client)
    cursor = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    for version, char in enumerate("total", start=2):
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(version=version, uri=URI),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(cursor, cursor), text=char
                    )
                ],
            )
        )
        cursor = types.Position(cursor.line, cursor.character + 1)
    while (await status(client)).pending:  # until the pre-encoding has run
        await asyncio.sleep(0.01)
    await client.text_document_inline_completion_async(inline_params(URI, cursor))
    state = await status(client)
    assert state.otherFiles.picked == ["calc.py:1-10"]
    assert state.lastEngine.reusedTokens == state.lastEngine.contextTokens
    assert state.lastEngine.contextTokens > _tokens(RENDERED)


async def test_zero_share_leaves_other_files_out(client):
    await start(client, trained_model(), settings={"context": {"otherFiles": 0}})
    _open_calc(client)
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    await client.text_document_inline_completion_async(inline_params(URI, position))
    state = await status(client)
    assert state.otherFiles.picked == [] and "calc.py" in state.otherFiles.sources


async def _start_in(client: LanguageClient, folder: Path) -> None:
    """Initialize with `folder` as the workspace folder; wait for the model."""
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            initialization_options={"model": {"path": str(trained_model())}},
            root_uri=folder.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=folder.as_uri(), name="w")],
        )
    )
    await wait_loaded(client)


async def _watching(client: LanguageClient, folder: Path) -> None:
    """Until the server logs that its watch on `folder` is set up."""

    async def wait() -> None:
        while not any(f"watching {folder} for" in m.message for m in client.log_messages):
            await client.wait_for_notification(types.WINDOW_LOG_MESSAGE)

    await asyncio.wait_for(wait(), WAIT_S)


async def _sources_once(client: LanguageClient, label: str, present: bool) -> list[str]:
    """The server's sources once `label` is among them (or gone from them): a poll, since
    the watcher reports in its own time."""

    async def poll() -> list[str]:
        while (label in (sources := (await status(client)).otherFiles.sources)) != present:
            await asyncio.sleep(0.05)
        return sources

    return await asyncio.wait_for(poll(), WAIT_S)


async def test_a_file_written_into_the_workspace_becomes_a_source(guarded):  # noqa: F811
    client, folder = guarded
    workspace = folder / "workspace"
    (workspace / "node_modules" / "dep").mkdir(parents=True)
    await _start_in(client, workspace)
    await _watching(client, workspace)
    (workspace / "node_modules" / "dep" / "index.js").write_text("function add(a, b) {}\n")
    (workspace / "blob.bin").write_bytes(b"\x00add\x00" * 100)
    (workspace / "pkg").mkdir()
    (workspace / "pkg" / "calc.py").write_text(CALC)
    sources = await _sources_once(client, "pkg/calc.py", present=True)
    assert sources == ["pkg/calc.py"]  # not the dependency, not the binary file
    position = open_doc(
        client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX, uri=(workspace / "a.py").as_uri()
    )
    params = inline_params((workspace / "a.py").as_uri(), position)
    await client.text_document_inline_completion_async(params)
    assert (await status(client)).otherFiles.picked == ["pkg/calc.py:1-10"]
    (workspace / "pkg" / "calc.py").unlink()
    assert await _sources_once(client, "pkg/calc.py", present=False) == ["a.py"]
    await _moves_to_another_folder(client, workspace, folder / "second")
    assert not (folder / "network.log").exists(), (folder / "network.log").read_text()


async def _moves_to_another_folder(client: LanguageClient, old: Path, new: Path) -> None:
    """After didChangeWorkspaceFolders the new folder is watched (and labels follow it)."""
    new.mkdir()
    event = types.WorkspaceFoldersChangeEvent(
        added=[types.WorkspaceFolder(uri=new.as_uri(), name="second")],
        removed=[types.WorkspaceFolder(uri=old.as_uri(), name="w")],
    )
    client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(event))
    await _watching(client, new)
    (new / "util.py").write_text(CALC)
    assert "util.py" in await _sources_once(client, "util.py", present=True)
