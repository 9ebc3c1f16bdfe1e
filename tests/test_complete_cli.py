"""`diffill complete` as a user runs it: a file position, JSON on stdin, and every kind of bad
input answered by one line naming the problem, exit code 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX, copy_folder, shared_folder

from diffill.complete import split_at


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return shared_folder(tmp_path_factory)


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "add.py"
    path.write_text(TRAIN_PREFIX + TRAIN_SUFFIX)
    return path


def diffill(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "diffill", "complete", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("diffill complete: error: ")
    for word in words:
        assert word in done.stderr, done.stderr


def test_completes_a_file_position(folder, source) -> None:
    done = diffill(str(source), "--line", "2", "--col", "12", "--model", str(folder))
    assert done.returncode == 0, done.stderr
    text, timings = done.stdout.rsplit("--- ", 1)
    assert text == TRAIN_MIDDLE + "\n"
    assert timings.startswith("diffusion on onnx-int8: 3 tokens")


def test_json_on_stdin_and_json_out(folder) -> None:
    stdin = json.dumps({"prefix": TRAIN_PREFIX, "suffix": TRAIN_SUFFIX})
    done = diffill("-", "--model", str(folder), "--json", "--mode", "ar", stdin=stdin)
    output = json.loads(done.stdout)
    assert output["completion"] == TRAIN_MIDDLE and output["mode"] == "ar"
    assert output["candidates"][0]["steps"] == output["candidates"][0]["tokens"] + 1
    assert output["timings"]["context_tokens"] > 0


def test_model_comes_from_the_environment(folder, source) -> None:
    import os

    env = {**os.environ, "DIFFILL_MODEL": str(folder)}
    command = [sys.executable, "-m", "diffill", "complete", str(source), "--line", "2"]
    done = subprocess.run(
        [*command, "--col", "12", "--runtime", "torch"], capture_output=True, text=True, env=env
    )
    assert done.stdout.startswith(TRAIN_MIDDLE + "\n--- diffusion on torch")


def test_split_at_counts_lines_and_columns_from_one() -> None:
    assert split_at("ab\ncd\n", 2, 2, "f") == ("ab\nc", "d\n")
    assert split_at("ab\ncd\n", 3, 1, "f") == ("ab\ncd\n", "")
    assert split_at("ab\r\ncd", 1, 3, "f") == ("ab", "\r\ncd")


@pytest.mark.parametrize(
    ("line", "col", "words"),
    [("9", "1", ["line 9", "lines 1..6"]), ("2", "40", ["column 40", "columns 1..12"])],
)
def test_positions_past_the_end(folder, source, line, col, words) -> None:
    done = diffill(str(source), "--line", line, "--col", col, "--model", str(folder))
    assert_one_line_error(done, *words)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["prefix and suffix are both empty"]),
        (b"x = '\xff\xfe'\n", ["not UTF-8", "offset 5"]),
        (b"\x7fELF\x00\x00binary", ["binary"]),
        (b"# big\n" * 900_000, ["5400000 bytes", "limit"]),
    ],
)
def test_bad_files(folder, tmp_path, content, words) -> None:
    path = tmp_path / "input.py"
    path.write_bytes(content)
    assert_one_line_error(
        diffill(str(path), "--line", "1", "--col", "1", "--model", str(folder)), *words
    )


@pytest.mark.parametrize(
    ("stdin", "words"),
    [
        ("{not json", ["stdin is not UTF-8 JSON"]),
        ('["prefix"]', ["JSON object"]),
        ('{"prefix": 3}', ["JSON object"]),
    ],
)
def test_bad_stdin(folder, stdin, words) -> None:
    assert_one_line_error(diffill("-", "--model", str(folder), stdin=stdin), *words)


def test_missing_file_and_missing_position(folder, tmp_path) -> None:
    assert_one_line_error(
        diffill(str(tmp_path / "nope.py"), "--line", "1", "--col", "1"), "no such file"
    )
    assert_one_line_error(diffill(str(tmp_path), "--model", str(folder)), "--line and --col")


def _damage_config(folder: Path) -> str:
    (folder / "config.json").write_text("{ not json")
    return "config.json"


def _damage_tokenizer(folder: Path) -> str:
    (folder / "tokenizer.json").write_text('{"model": 1}')
    return "tokenizer"


def _truncate_shard(folder: Path) -> str:
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return "truncated"


def _cut_shard_header(folder: Path) -> str:
    shard = sorted(folder.glob("model-*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[:5])
    return "bad header"


def _remove_shard(folder: Path) -> str:
    sorted(folder.glob("model-*.safetensors"))[-1].unlink()
    return "missing weight shards"


def _garble_graph(folder: Path) -> str:
    (folder / "denoise.onnx").write_bytes(b"\x08\x07garbage")
    return "denoise.onnx"


def _remove_graphs_file(folder: Path) -> str:
    (folder / "graphs.json").unlink()
    return "graphs.json"


@pytest.mark.parametrize(
    "damage",
    [
        _damage_config,
        _damage_tokenizer,
        _truncate_shard,
        _cut_shard_header,
        _remove_shard,
        _garble_graph,
        _remove_graphs_file,
    ],
)
def test_broken_model_folders(folder, tmp_path, damage) -> None:
    copy = copy_folder(folder, tmp_path / "model")
    word = damage(copy)
    stdin = json.dumps({"prefix": "x = "})
    assert_one_line_error(
        diffill("-", "--model", str(copy), "--runtime", "onnx", stdin=stdin), word
    )


def test_missing_model_folder(tmp_path) -> None:
    done = diffill("-", "--model", str(tmp_path / "none"), stdin='{"prefix": "x"}')
    assert_one_line_error(done, "model folder", "does not exist")
