"""The InitializeResult and the model-load progress, checked against the spec."""

from __future__ import annotations

import sys

import pytest_lsp
from lsp_harness import start, trained_model
from lsprotocol import types
from pytest_lsp import LanguageClient


@pytest_lsp.fixture(
    config=pytest_lsp.ClientServerConfig(
        server_command=[sys.executable, "-m", "lsp_server", "--stdio"]
    )
)
async def module_client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_capabilities_advertise_every_feature(client):
    result = await start(client, trained_model())
    caps = result.capabilities
    assert isinstance(caps.inline_completion_provider, types.InlineCompletionOptions)
    assert caps.completion_provider is not None
    assert "diffill.accepted" in caps.execute_command_provider.commands
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert caps.text_document_sync.open_close is True
    assert caps.position_encoding == types.PositionEncodingKind.Utf16
    assert result.server_info.name == "diffill"


async def test_utf8_is_used_when_the_client_offers_it(client):
    result = await start(client, trained_model(), encodings=["utf-8", "utf-16"])
    assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf8


async def test_model_load_reports_progress_begin_then_end(client):
    await start(client, trained_model())
    (reports,) = client.progress_reports.values()
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].title == "diffill"
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    assert reports[-1].message == "model ready"


async def test_python_dash_m_runs_the_same_server(module_client):
    result = await start(module_client, trained_model())
    assert result.server_info.name == "diffill"
    assert isinstance(result.capabilities.inline_completion_provider, types.InlineCompletionOptions)
