"""`diffill bench steps`: every model, runtime and context length gets its timed row."""

from __future__ import annotations

import re

from tiny_model import copy_folder, shared_folder

from diffill.cli import main


def test_each_folder_runtime_and_context_is_timed(tmp_path_factory, tmp_path, capsys) -> None:
    first = shared_folder(tmp_path_factory)
    second = copy_folder(first, tmp_path / "second")
    argv = ["--models", f"{first},{second}", "--contexts", "8,40", "--runs", "3"]
    assert main(["bench", "steps", *argv, "--runtimes", "onnx-int8,onnx"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| /")]
    assert len(rows) == 2 * 2 * 2
    for row in rows:
        folder, runtime, context, *figures = (cell.strip() for cell in row.strip("|").split("|"))
        assert folder in (str(first), str(second)) and runtime in ("onnx-int8", "onnx")
        assert context in {"8", "40"}
        step, step95, ratio, encode, encode95 = figures
        assert 0 < float(step) <= float(step95) and 0 < float(encode) <= float(encode95)
        assert re.fullmatch(r"\d+\.\dx", ratio)


def test_a_folder_without_a_model_is_named(tmp_path, capsys) -> None:
    missing = tmp_path / "missing"
    assert main(["bench", "steps", "--models", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
