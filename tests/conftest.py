"""The `client` fixture every LSP test file uses: the real `diffill lsp` command, shut down
cleanly after each test (tests/lsp_harness.py has the helpers that drive it)."""

from __future__ import annotations

from lsp_harness import lsp_fixture
from pytest_lsp import LanguageClient


@lsp_fixture()
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()
