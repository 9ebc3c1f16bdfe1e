"""The model shipped in models/: it fits the size budget, its ONNX graphs are current, and it
completes a small Python function through the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.completer import CompletionRequest
from engine.loading import open_completer

MODELS = Path(__file__).resolve().parent.parent / "models"
DEMO = MODELS.parent / "examples" / "demo.py"
MAX_FOLDER_BYTES = 40 * 1000 * 1000

pytestmark = pytest.mark.skipif(
    not (MODELS / "config.json").exists(), reason="models/ holds no trained model yet"
)


def test_shipped_folder_fits_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file())
    assert total < MAX_FOLDER_BYTES


def test_default_model_serves_on_onnx_and_completes_a_function() -> None:
    completer = open_completer()  # the default folder, the default runtime
    assert completer.describe()["runtime"] == "onnx-int8"  # int8 steps on the CPU
    prefix = "def square(x):\n    return "
    result = completer.complete(CompletionRequest(prefix, "\n\n\nprint(square(3))\n"))
    assert result.text.strip()
    assert result.candidates[0].tokens > 0 and result.timings.context_tokens > 5


def test_demo_command_prints_a_completion() -> None:
    command = [sys.executable, "-m", "diffill", "complete", str(DEMO), "--line", "7"]
    done = subprocess.run(
        [*command, "--col", "11", "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["completion"].strip() and output["runtime"] == "onnx-int8"
