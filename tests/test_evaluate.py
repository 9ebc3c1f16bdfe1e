"""`diffill eval`: seeded held-out examples, scoring, baselines, and the command's output."""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_model import shared_folder

from diffill.evaluation.evaluate import Answer, Example, heldout_examples, score, score_rows, shown


@pytest.fixture
def manifest(tmp_path) -> Path:
    """Four real stdlib modules held out, one training file that must never be sampled."""
    files = []
    for module in (argparse, difflib, inspect, json.decoder):
        path = tmp_path / f"{module.__name__}.py"
        path.write_text(inspect.getsource(module))
        files.append({"path": str(path), "language": "python", "split": "heldout"})
    train = tmp_path / "train_only.py"
    train.write_text("TRAINING_ONLY = 1\n" * 50)
    files.append({"path": str(train), "language": "python", "split": "train"})
    out = tmp_path / "corpus.json"
    out.write_text(json.dumps({"format": "diffill-corpus/1", "files": files}))
    return out


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_examples_are_seeded_held_out_and_of_each_kind(manifest) -> None:
    first = heldout_examples(_load(manifest), 1, seed=3)
    assert first == heldout_examples(_load(manifest), 1, seed=3)
    assert first != heldout_examples(_load(manifest), 1, seed=4)
    assert [e.kind for e in first] == ["single-line", "multi-line", "random-span"]
    assert all("TRAINING_ONLY" not in e.prefix + e.middle + e.suffix for e in first)
    single, multi = first[0], first[1]
    assert "\n" not in single.middle.strip() and "\n" in multi.middle
    assert single.prefix + single.middle + single.suffix == Path(single.path).read_text()


def test_every_language_gets_its_own_examples(manifest, tmp_path) -> None:
    """Python dominates the held-out files; the one shell script still gets every kind."""
    script = tmp_path / "build.sh"
    script.write_text("".join(f'echo "step {i}"\nmake target{i} || exit 1\n' for i in range(20)))
    corpus = _load(manifest)
    corpus["files"].append({"path": str(script), "language": "shell", "split": "heldout"})
    examples = heldout_examples(corpus, 1, seed=0)  # one file: one example per pass
    for language in ("python", "shell"):
        kinds = sorted(e.kind for e in examples if e.language == language)
        assert kinds == ["multi-line", "random-span", "single-line"]


def test_scores_exact_match_similarity_and_empty_share() -> None:
    examples = [
        Example("a.py", "python", "single-line", "", "return x", ""),
        Example("b.py", "python", "single-line", "", "pass", ""),
    ]
    pairs = list(zip(examples, [Answer("return x  "), Answer("")], strict=True))
    row = score("m", "python", "single-line", pairs)
    assert row["exact_match"] == 0.5 and row["empty_share"] == 0.5
    assert row["edit_similarity"] == 0.5  # 1.0 for the first, 0.0 for the empty answer
    rows = score_rows(examples, {"pass": [Answer("pass"), Answer("pass")]})
    assert {r["kind"]: r["exact_match"] for r in rows} == {"single-line": 0.5, "all": 0.5}


def test_single_line_gaps_score_the_first_line_only() -> None:
    assert shown("x + 1\nprint(x)", "single-line") == "x + 1"
    assert shown("x + 1\nprint(x)", "multi-line") == "x + 1\nprint(x)"


def _eval(tmp_path_factory, manifest: Path, *extra: str) -> subprocess.CompletedProcess:
    folder = shared_folder(tmp_path_factory)
    command = [sys.executable, "-m", "diffill", "eval", "--model", str(folder)]
    return subprocess.run(
        [*command, "--manifest", str(manifest), "--limit", "2", "--json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_eval_command_reports_both_modes_and_baselines(tmp_path_factory, manifest) -> None:
    done = _eval(tmp_path_factory, manifest)
    assert done.returncode == 0, done.stderr
    rows = {(r["answer"], r["kind"]): r for r in json.loads(done.stdout)}
    assert {answer for answer, _ in rows} == {"diffusion", "ar", "empty", "pass"}
    assert rows[("empty", "all")]["empty_share"] == 1.0 and rows[("empty", "all")]["examples"] == 6
    assert rows[("ar", "all")]["mean_steps"] > rows[("diffusion", "all")]["mean_steps"] > 0
    assert all(0.0 <= r["edit_similarity"] <= 1.0 for r in rows.values())
    assert all(0.0 <= r["plausible_share"] <= 1.0 for r in rows.values())  # stdlib files parse
    assert rows[("empty", "all")]["plausible_share"] < 1.0  # some removed lines break a file


def test_no_ar_scores_the_int8_runtime_without_ar_answers(tmp_path_factory, manifest) -> None:
    done = _eval(tmp_path_factory, manifest, "--no-ar", "--runtime", "onnx-int8")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {r["answer"] for r in rows} == {"diffusion", "empty", "pass"}
    assert all(r["mean_steps"] > 0 for r in rows if r["answer"] == "diffusion")  # it denoised


def test_eval_compares_gap_length_strategies(tmp_path_factory, manifest) -> None:
    done = _eval(tmp_path_factory, manifest, "--lengths", "blocks,predicted", "--steps", "2")
    assert done.returncode == 0, done.stderr
    rows = {(r["answer"], r["kind"]): r for r in json.loads(done.stdout)}
    assert {answer for answer, _ in rows} == {
        "diffusion",
        "diffusion/predicted",
        "ar",
        "empty",
        "pass",
    }
    for source in ("diffusion", "diffusion/predicted"):  # at most 2 steps per 8-token block
        assert 0 < rows[(source, "all")]["mean_steps"] <= 2 * 48 / 8


def test_eval_names_an_unknown_length_strategy(tmp_path_factory, manifest) -> None:
    done = _eval(tmp_path_factory, manifest, "--lengths", "blocks,guess")
    assert done.returncode == 2
    assert "unknown --lengths ['guess']" in done.stderr


def test_eval_compares_models_on_the_same_examples(tmp_path_factory, manifest) -> None:
    other = shared_folder(tmp_path_factory, "random", train_steps=0)
    done = _eval(tmp_path_factory, manifest, "--compare", str(other))
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    first, second = shared_folder(tmp_path_factory).name, other.name
    by_model = {
        model: {r["answer"] for r in rows if r["model"] == model} for model in (first, second)
    }
    assert by_model == {first: {"diffusion", "ar", "empty", "pass"}, second: {"diffusion", "ar"}}
    counts = {(r["model"], r["answer"]): r["examples"] for r in rows if r["kind"] == "all"}
    assert counts[(first, "diffusion")] == counts[(second, "diffusion")] == 6


def test_a_fixed_set_is_cut_once_and_read_back_unchanged(tmp_path_factory, manifest) -> None:
    """Shipping compares legs on the same examples even when the held-out files change."""
    fixed = manifest.parent / "eval-set.json"
    first = _eval(tmp_path_factory, manifest, "--set", str(fixed))
    assert first.returncode == 0, first.stderr
    examples = json.loads(fixed.read_text())["examples"]
    assert [e["kind"] for e in examples].count("single-line") == 2
    for entry in _load(manifest)["files"]:  # the files are gone: the set alone must do
        Path(entry["path"]).write_text("CHANGED = 1\n")
    again = _eval(tmp_path_factory, manifest, "--set", str(fixed), "--limit", "1")
    assert again.returncode == 0, again.stderr
    assert json.loads(fixed.read_text())["examples"] == examples
    scored = {(r["answer"], r["kind"]): r for r in json.loads(again.stdout)}
    assert scored[("empty", "all")]["examples"] == 6  # the set's six, not a new --limit 1 cut


def test_a_broken_set_file_is_a_one_line_error(tmp_path_factory, manifest) -> None:
    broken = manifest.parent / "broken.json"
    broken.write_text('{"examples": [{"path": 1}]}')
    done = _eval(tmp_path_factory, manifest, "--set", str(broken))
    assert (
        done.returncode == 2
        and f"example set {broken} is not one diffill eval wrote" in done.stderr
    )


def test_a_span_that_is_the_whole_file_is_not_an_example() -> None:
    """Nothing around the gap: no completer can be asked (an empty context is refused)."""
    import random

    from diffill.evaluation.evaluate import cut_example

    entry = {"path": "one.py", "language": "python"}
    found = [cut_example(entry, "x = 1\n", "random-span", random.Random(s)) for s in range(50)]
    assert all(e is None or e.prefix + e.suffix for e in found)
    assert any(e is not None for e in found)


def test_bench_engine_reports_a_step_cost_per_runtime(tmp_path_factory, manifest) -> None:
    folder = shared_folder(tmp_path_factory)
    command = [sys.executable, "-m", "diffill", "bench", "engine", "--model", str(folder)]
    done = subprocess.run(
        [*command, "--manifest", str(manifest), "--positions", "2", "--runtimes", "onnx,onnx-int8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| onnx")]
    cells = {(r[0].strip(), r[1].strip(), r[2].strip()): r[-1].strip() for r in rows}
    assert {runtime for runtime, _, _ in cells} == {"onnx", "onnx-int8"}
    assert float(cells[("onnx-int8", "diffusion", "warm")]) > 0  # ms per warm step
    assert cells[("onnx", "diffusion", "cold")] == "-"
