"""The VS Code extension's build, lint and Node protocol test, run when node and npm exist.

`npm test` compiles the TypeScript and runs test/restarts.test.ts (the restart budget) and
test/protocol.test.ts, which drives the real `diffill lsp` with vscode-languageserver-protocol
(the library inside vscode-languageclient).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

VSCODE = Path(__file__).resolve().parents[2] / "editor-clients" / "vscode"
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(
    not (NPM and shutil.which("node")), reason="node and npm are needed for the VS Code client"
)


def npm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run npm in its own process group, so a timeout also stops node and the server."""
    with subprocess.Popen(
        [NPM or "npm", *args],
        cwd=VSCODE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """Install the locked dependencies once (npm ci) when they are missing."""
    if not (VSCODE / "node_modules" / ".package-lock.json").exists():
        done = npm("ci", "--no-audit", "--no-fund")
        assert done.returncode == 0, done.stderr[-2000:]
    return VSCODE / "node_modules"


def test_typescript_builds_and_lints_clean(node_modules):
    built = npm("run", "compile")
    assert built.returncode == 0, built.stdout[-2000:]
    assert (VSCODE / "out" / "src" / "extension.js").exists()
    lint = npm("run", "lint")
    assert lint.returncode == 0, lint.stdout[-2000:]


def test_protocol_against_the_real_server(node_modules, server_cmd):
    env = {**os.environ, "DIFFILL_SERVER": server_cmd[0]}
    run = npm("test", env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "# pass 7" in run.stdout and "# fail 0" in run.stdout  # 2 protocol, 5 restart budget
