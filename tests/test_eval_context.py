"""`diffill eval context`: the same held-out gaps with the file alone and with its folder's
other files as sources, through the server's window planner."""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import subprocess
import sys
import textwrap

from tiny_model import shared_folder


def test_other_files_reach_the_context_and_both_are_scored(tmp_path_factory, tmp_path) -> None:
    files = []
    for module in (argparse, difflib, textwrap):
        path = tmp_path / f"{module.__name__}.py"
        path.write_text(inspect.getsource(module))
        files.append({"path": str(path), "language": "python", "split": "heldout"})
    manifest = tmp_path / "corpus.json"
    manifest.write_text(json.dumps({"format": "diffill-corpus/1", "files": files}))
    command = [sys.executable, "-m", "diffill", "eval", "context"]
    model = ["--model", str(shared_folder(tmp_path_factory))]
    done = subprocess.run(
        [*command, *model, "--manifest", str(manifest), "--limit", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    alls = {r["answer"]: r for r in report["rows"] if r["kind"] == "all"}
    assert set(alls) == {"file alone", "with other files"}
    assert alls["file alone"]["examples"] == alls["with other files"]["examples"] == 3
    chunks = report["mean_chunks"]
    assert chunks["file alone"] == 0 and chunks["with other files"] > 0
