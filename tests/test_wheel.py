"""`pip install .` serves: the wheel carries the default model as package data, installs no
top-level `models` or `tests`, and, in a fresh venv without torch, `diffill complete -` and
`diffill lsp` (one inline completion) work from a folder outside the clone."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_package_list_names_every_package_folder() -> None:
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {
        ".".join(path.parent.relative_to(REPO).parts)
        for package in ("diffill", "engine", "lsp_server", "http_server")
        for path in (REPO / package).rglob("__init__.py")
    }
    assert set(listed) == found | {"engine.default_model"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed into a fresh venv (no torch)."""
    base = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(base / "dist"), str(REPO)], check=True, capture_output=True)
    wheel = next((base / "dist").glob("diffill-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.startswith(("models/", "tests/")) for n in names)
    assert "engine/default_model/model.safetensors.index.json" in names
    venv.create(base / "venv", with_pip=True)
    pip = [str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)
    return base / "venv" / "bin"


def outside_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DIFFILL_MODEL", "PYTHONPATH")}
    return {**env, "PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_the_wheel_has_no_torch_and_completes_from_stdin(installed: Path, tmp_path: Path) -> None:
    python = installed / "python"
    probe = "import importlib.util as u; print(u.find_spec('torch') is None)"
    assert subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout == "True\n"
    request = json.dumps({"prefix": "def add(a, b):\n    return ", "suffix": "\n"})
    done = subprocess.run(
        [installed / "diffill", "complete", "-", "--json"],
        input=request,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=outside_env(installed),
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["runtime"] == "onnx-int8" and answer["timings"]["context_tokens"] > 0
    where = "from engine.loading import default_model_path as d; print(d())"
    found = subprocess.run([python, "-c", where], capture_output=True, text=True, cwd=tmp_path)
    assert found.stdout.strip().endswith("site-packages/engine/default_model")


def test_the_wheel_serves_an_inline_completion(installed: Path, tmp_path: Path) -> None:
    async def session() -> types.InlineCompletionList | list | None:
        client = LanguageClient("wheel-test", "1")
        loaded = asyncio.Event()

        @client.feature(types.PROGRESS)
        def progress(params: types.ProgressParams) -> None:
            if isinstance(params.value, dict) and params.value.get("kind") == "end":
                loaded.set()

        @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        await client.start_io(
            str(installed / "diffill"), "lsp", cwd=str(tmp_path), env=outside_env(installed)
        )
        capabilities = types.ClientCapabilities(
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities()
            ),
            window=types.WindowClientCapabilities(work_done_progress=True),
        )
        await client.initialize_async(types.InitializeParams(capabilities=capabilities))
        client.initialized(types.InitializedParams())
        await asyncio.wait_for(loaded.wait(), 120)
        uri = (tmp_path / "a.py").as_uri()
        text = "def add(a, b):\n    return \n"
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
        )
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
                text_document=types.TextDocumentIdentifier(uri),
                position=types.Position(1, 11),
            )
        )
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
        return result

    result = asyncio.run(session())
    items = result.items if isinstance(result, types.InlineCompletionList) else result
    assert items and isinstance(items[0].insert_text, str)
