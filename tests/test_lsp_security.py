"""What settings, model folders and logs can do to a user, through the real server: a
`model.path` is checked (a folder with a config.json and safetensors weights), nothing in a
model folder is executed, stderr carries document text only as a short excerpt at DEBUG,
and `diffill/status` names no path of another workspace."""

from __future__ import annotations

import json
import pickle
import shutil
import time
from pathlib import Path

from lsp_harness import trained_model
from lsp_stdio import StdioServer

from lsp_server.log_privacy import EXCERPT_CHARS


class Trap:
    """Unpickling this creates `path`: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _booby_trapped(folder: Path, marker: Path) -> None:
    """Files a model folder may hold that diffill must never run."""
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Trap(marker)))
    code = f"open({str(marker)!r}, 'w').close()\n"
    for name in ("modeling_diffill.py", "__init__.py", "configuration.py"):
        (folder / name).write_text(code)


def _load(server: StdioServer, path: Path, failures: int) -> dict:
    server.notify("workspace/didChangeConfiguration", {"settings": {"model": {"path": str(path)}}})
    while (state := server.result("diffill/status", {}))["loadFailures"] < failures:
        time.sleep(0.05)
    return state


def test_model_paths_are_checked_and_nothing_in_a_model_folder_runs(tmp_path):
    marker = tmp_path / "executed"
    trapped = Path(shutil.copytree(trained_model(), tmp_path / "trapped"))
    _booby_trapped(trapped, marker)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(trained_model() / "config.json", pickled)
    _booby_trapped(pickled, marker)
    server = StdioServer()
    try:
        server.initialize({"model": {"path": str(trapped)}})
        assert server.wait_ready()["state"] == "ready"  # its safetensors, nothing else
        state = _load(server, trapped / "config.json", failures=1)
        assert "is a file; it must name a model folder" in state["error"]
        state = _load(server, pickled, failures=2)
        assert "found pytorch_model.bin: pickle, which diffill never loads" in state["error"]
        state = _load(server, tmp_path, failures=3)
        assert "has no config.json" in state["error"]
        assert state["state"] == "ready"  # the first model kept serving throughout
    finally:
        server.close()
    assert not marker.exists()


SECRET_EARLY, SECRET_LATE = "early_secret_4711", "late_secret_0815"


def _exercise(server: StdioServer) -> str:
    """Open a document with a secret near its start and one far past any excerpt; ask for
    completions and send messages that make pygls warn."""
    text = f"{SECRET_EARLY} = 1\n" + "x = 2\n" * 600 + f"{SECRET_LATE} = 3\n"
    uri = "file:///w/private.py"
    item = {"uri": uri, "languageId": "python", "version": 1, "text": text}
    server.notify("textDocument/didOpen", {"textDocument": item})
    where = {"textDocument": {"uri": uri}, "position": {"line": 601, "character": 0}}
    server.request("textDocument/inlineCompletion", {**where, "context": {"triggerKind": 1}})
    server.request("diffill/debug/document", {"uri": uri})
    server.notify("textDocument/didChange", {"textDocument": {"uri": uri}, "junk": text})
    server.notify("diffill/no-such-notification", {"text": text})
    server.request("textDocument/completion", {"textDocument": text})
    server.close()
    return server.log()


def test_logs_carry_document_text_only_as_a_debug_excerpt():
    model = {"model": {"path": str(trained_model())}}
    quiet = StdioServer()
    quiet.initialize(model)
    quiet.wait_ready()
    log = _exercise(quiet)
    assert SECRET_EARLY not in log and SECRET_LATE not in log
    verbose = StdioServer("--log-level", "DEBUG")
    verbose.initialize(model)
    verbose.wait_ready()
    log = _exercise(verbose)
    assert "chars cut]" in log  # the bodies were there, cut
    assert SECRET_LATE not in log
    assert all(len(line) <= EXCERPT_CHARS + 60 for line in log.splitlines() if "cut]" in line)


def test_status_names_no_path_of_another_workspace(tmp_path):
    (tmp_path / "mine").mkdir()
    server = StdioServer()
    try:
        root = (tmp_path / "mine").as_uri()
        server.initialize({"model": {"path": str(trained_model())}}, root_uri=root)
        server.wait_ready()
        for uri in (f"{root}/a.py", "file:///home/someone/secret-project/b.py"):
            item = {"uri": uri, "languageId": "python", "version": 1, "text": "v = 1\n"}
            server.notify("textDocument/didOpen", {"textDocument": item})
        state = server.result("diffill/status", {})
    finally:
        server.close()
    assert sorted(state["otherFiles"]["sources"]) == ["a.py", "b.py"]
    assert "secret-project" not in json.dumps(state)
