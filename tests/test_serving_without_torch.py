"""The serving path never imports torch: `diffill complete` and the modules the language
server loads run in a subprocess where importing torch raises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX, copy_folder, shared_folder

from engine.runtime_onnx import DENOISE_GRAPH, ENCODE_GRAPH

BLOCK_TORCH = """
import sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this test ({name})")
        return None

sys.meta_path.insert(0, BlockTorch())
"""

CLI = BLOCK_TORCH + "from diffill.cli import main\nsys.exit(main(sys.argv[1:]))\n"

SERVER_IMPORTS = (
    BLOCK_TORCH
    + """
import diffill.complete, engine.embedded, engine.loading, engine.runtime_onnx, engine.sampler
import engine.online.client, lsp_server.server
from engine.completer import CompletionRequest
completer = engine.loading.open_completer(sys.argv[1])
print(completer.complete(CompletionRequest(sys.argv[2], sys.argv[3])).text, end="")
assert "torch" not in sys.modules
"""
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return shared_folder(tmp_path_factory)


def _python(script: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_blocker_really_blocks_torch() -> None:
    done = _python(BLOCK_TORCH + "import torch\n")
    assert done.returncode != 0 and "torch is blocked" in done.stderr


def test_complete_command_runs_on_onnx_without_torch(folder) -> None:
    stdin = json.dumps({"prefix": TRAIN_PREFIX, "suffix": TRAIN_SUFFIX})
    done = _python(CLI, "complete", "-", "--model", str(folder), "--json", stdin=stdin)
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["completion"] == TRAIN_MIDDLE and output["runtime"] == "onnx-int8"


def test_server_side_modules_complete_without_torch(folder) -> None:
    done = _python(SERVER_IMPORTS, str(folder), TRAIN_PREFIX, TRAIN_SUFFIX)
    assert done.returncode == 0, done.stderr
    assert done.stdout == TRAIN_MIDDLE


def test_missing_graphs_without_torch_name_the_export_command(folder, tmp_path) -> None:
    copy = copy_folder(folder, tmp_path / "model")
    for name in (ENCODE_GRAPH, DENOISE_GRAPH):
        (copy / name).unlink()
    done = _python(CLI, "complete", "-", "--model", str(copy), stdin='{"prefix": "x = "}')
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "diffill export" in done.stderr
