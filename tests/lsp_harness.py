"""Shared pieces of the language-server tests: model folders, the real `diffill lsp` client,
documents with a marked cursor, and waiting for the model to load (on its progress report,
never on a sleep)."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

REPO = Path(__file__).resolve().parent.parent
EMBEDDED = REPO / "models"
DIFFILL = [str(Path(sys.executable).with_name("diffill")), "lsp"]
CURSOR = "║"
UNITS = {"utf-16": "utf-16-le", "utf-8": "utf-8"}


def embedded_model_ready() -> bool:
    return (EMBEDDED / "config.json").exists() and (EMBEDDED / "tokenizer.json").exists()


def capabilities(inline: bool = True, encodings: list[str] | None = None):
    text = types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities() if inline else None,
        completion=types.CompletionClientCapabilities(),
    )
    general = types.GeneralClientCapabilities(position_encodings=encodings) if encodings else None
    return types.ClientCapabilities(
        text_document=text,
        general=general,
        window=types.WindowClientCapabilities(work_done_progress=True),
    )


def lsp_fixture(**server_env: str):
    """Decorates a pytest-lsp fixture that runs the real `diffill lsp` command."""
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", **server_env}
    return pytest_lsp.fixture(config=ClientServerConfig(server_command=DIFFILL, server_env=env))


async def start(
    client: LanguageClient,
    model: Path,
    inline: bool = True,
    encodings: list[str] | None = None,
    settings: dict | None = None,
) -> types.InitializeResult:
    """Initialize with `model` and `settings` as initializationOptions; wait for the load."""
    settings = settings or {}
    options = {**settings, "model": {**settings.get("model", {}), "path": str(model)}}
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(inline, encodings), initialization_options=options
        )
    )
    await wait_loaded(client)
    return result


async def wait_loaded(client: LanguageClient) -> None:
    """Until the server's model-load progress ends."""
    while not any(
        isinstance(report, types.WorkDoneProgressEnd)
        for reports in client.progress_reports.values()
        for report in reports
    ):
        await client.wait_for_notification(types.PROGRESS)


def open_doc(
    client: LanguageClient,
    marked: str,
    uri: str = "file:///w/a.py",
    language: str = "python",
    encoding: str = "utf-16",
) -> types.Position:
    """Open `marked` (the cursor shown as ║) and return the cursor position in `encoding`."""
    text = marked.replace(CURSOR, "")
    before = marked[: marked.index(CURSOR)]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )
    line_start = before[before.rfind("\n") + 1 :]
    width = len(line_start.encode(UNITS[encoding])) // (2 if encoding == "utf-16" else 1)
    return types.Position(line=before.count("\n"), character=width)


def trained_model(train_steps: int = 150) -> Path:
    """A tiny model trained to fill `tiny_model.TRAIN_PREFIX` with `TRAIN_MIDDLE` (with
    train_steps=0: random weights, which rarely stop early, for slow requests).

    Training takes tens of seconds on a busy machine, so the folder is kept in the temp
    directory under a hash of the code that builds it, and rebuilt when that code changes."""
    import tiny_model

    digest = hashlib.sha256(Path(tiny_model.__file__).read_bytes()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "diffill-lsp-tests" / f"tiny-{train_steps}-{digest}"
    if not (folder / "config.json").exists():
        building = folder.with_name(f"{folder.name}.{os.getpid()}")
        tiny_model.build_model_folder(building, train_steps=train_steps)
        building.rename(folder)  # atomic: a half-built folder is never used
    return folder


def serving_model() -> Path:
    """The embedded model in models/ once it is committed, else the trained tiny one."""
    return EMBEDDED if embedded_model_ready() else trained_model()


def inline_params(
    uri: str,
    position: types.Position,
    kind: types.InlineCompletionTriggerKind = types.InlineCompletionTriggerKind.Automatic,
    **context: object,
) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri),
        position=position,
        context=types.InlineCompletionContext(trigger_kind=kind, **context),
    )


async def status(client: LanguageClient):
    """The `diffill/status` result (pygls hands custom results over as named tuples)."""
    return await client.protocol.send_request_async("diffill/status", {})


def online(kind: str, url: str, **backend: object) -> dict:
    """Settings for an online backend of `kind` at `url`."""
    return {"backend": {"kind": kind, "url": url, **backend}}


async def complete(client: LanguageClient, marked: str, uri: str = "file:///w/a.py"):
    """Open `marked` and ask for an automatic inline completion at its cursor."""
    position = open_doc(client, marked, uri)
    return await client.text_document_inline_completion_async(inline_params(uri, position))


def free_port() -> int:
    """A loopback port with nothing listening: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
