"""Fixtures shared by the editor-client tests: the real server command and the repository paths."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "editor-clients"


@pytest.fixture(scope="session")
def server_cmd() -> list[str]:
    """`diffill lsp` from the environment running the tests: the real server and model."""
    exe = Path(sys.executable).with_name("diffill")
    found = str(exe) if exe.exists() else shutil.which("diffill")
    if not found:
        pytest.skip("the diffill command is not installed in this environment")
    return [found, "lsp"]
