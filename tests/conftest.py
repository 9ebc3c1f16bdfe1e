"""The `client` fixture every LSP test file uses: the real `diffill lsp` command, shut down
cleanly after each test (tests/lsp_harness.py has the helpers that drive it). And a folder of
training runs of the tests' own, so no benchmark a test starts pauses the user's real run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from lsp_harness import lsp_fixture
from pytest_lsp import LanguageClient

from engine.training.background import RUNS_ENV


@pytest.fixture(autouse=True, scope="session")
def own_runs_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = os.environ.get(RUNS_ENV)
    os.environ[RUNS_ENV] = str(tmp_path_factory.mktemp("runs"))  # subprocesses inherit it
    yield
    if before is None:
        os.environ.pop(RUNS_ENV, None)
    else:
        os.environ[RUNS_ENV] = before


@lsp_fixture()
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()
