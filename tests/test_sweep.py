"""`diffill sweep` on the tiny plan, end to end through the real commands: every point's row
carries its real shape, finished stages are reused on a rerun, bad plans fail in one line."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

from diffill.cli import main
from diffill.evaluation.evaluate import Example, heldout_examples
from diffill.evaluation.sweep.measure import window
from diffill.evaluation.sweep.plan import load_plan
from diffill.evaluation.sweep.report import pick
from engine.checkpoint import load_config
from engine.model import DiffusionFIM
from engine.tokenizer import load_tokenizer
from engine.training.corpus import load_manifest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("engine/training/fim.py", "engine/model.py", "engine/training/tokenizer.py")
SOURCES += ("engine/checkpoint.py", "engine/training/corpus.py", "engine/config.py")
SOURCES += ("engine/training/train.py", "engine/sampler.py", "engine/embedded.py")
SOURCES += ("diffill/evaluation/evaluate.py",)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest over some of this project's files, with a large held-out share so the
    latency and eval positions exist."""
    tmp = tmp_path_factory.mktemp("corpus")
    for name in SOURCES:
        shutil.copy(REPO / name, tmp / Path(name).name)
    manifest = tmp / "corpus.json"
    argv = ["corpus", "--root", str(tmp), "--out", str(manifest), "--heldout-fraction", "0.4"]
    assert main(argv) == 0
    splits = {entry["split"] for entry in json.loads(manifest.read_text())["files"]}
    assert splits == {"train", "heldout"}
    return manifest


def sweep_argv(corpus: Path, out: Path, *extra: str) -> list[str]:
    argv = ["sweep", "--plan", "tiny", "--corpus", str(corpus), "--out", str(out)]
    return [*argv, "--positions", "4", "--rounds", "2", "--json", str(out / "sweep.json"), *extra]


def sweep(corpus: Path, out: Path, *extra: str) -> dict:
    assert main(sweep_argv(corpus, out, *extra)) == 0
    return json.loads((out / "sweep.json").read_text())


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.*")}


@pytest.fixture(scope="module")
def latency_sweep(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny plan with random weights: its folder, holding sweep.json."""
    out = tmp_path_factory.mktemp("latency") / "sweep"
    sweep(corpus, out, "--latency-only")
    return out


def test_latency_only_rows_have_each_points_real_shape_and_rerun_reuses_them(
    corpus: Path, latency_sweep: Path, capsys: pytest.CaptureFixture
) -> None:
    out = latency_sweep
    record = json.loads((out / "sweep.json").read_text())
    plan = load_plan("tiny", None)
    assert [r["name"] for r in record["points"]] == [p.name for p in plan.points]
    for row, point in zip(record["points"], plan.points, strict=True):
        assert load_config(out / point.name / "model") == point.config
        assert row["parameters"] == DiffusionFIM(point.config).num_parameters()
        assert {k: row[k] for k in point.shape()} == point.shape()
        assert row["tokens_seen"] is None and row["edit_similarity"] is None
        assert 0 < row["warm_p50_ms"] <= row["warm_p95_ms"] and row["cold_p50_ms"] > 0
        assert row["warm_p50_ms"] == statistics.median(row["warm_p50_rounds_ms"])
        assert len(row["warm_p50_rounds_ms"]) == 2
        assert 1 <= row["warm_steps"] <= 4 * -(-16 // point.config.canvas_size)
    tokenizers = {p.name.split("-")[1]: p for p in (out / "tokenizers").glob("vocab-*.json")}
    assert sorted(tokenizers) == ["384", "512"]
    assert load_tokenizer(tokenizers["512"]).get_vocab_size() == 512
    before, _ = mtimes(out / "base"), capsys.readouterr()
    again, captured = sweep(corpus, out, "--latency-only"), capsys.readouterr()
    assert "base: cached" in captured.err
    assert mtimes(out / "base") == before and again["points"] == record["points"]
    assert all(f"| {p.name} | " in captured.out for p in plan.points) and "Pick: " in captured.out


def test_training_points_report_their_run_and_reuse_the_model(
    corpus: Path, latency_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, measured = tmp_path / "sweep", latency_sweep / "sweep.json"
    borrow = ("--latency-from", str(measured))
    row = sweep(corpus, out, "--points", "base", "--train-steps", "10", *borrow)["points"][0]
    there = json.loads(measured.read_text())["points"][0]
    assert row["warm_p50_ms"] == there["warm_p50_ms"] and row["cold_p50_ms"] == there["cold_p50_ms"]
    assert "Latency of base: from" in capsys.readouterr().out
    log = out / "base" / "run" / "log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert row["tokens_seen"] == 10 * 4 * 64  # steps x tiny preset batch x sequence
    assert row["heldout_loss"] == [r for r in records if "heldout_loss" in r][-1]["heldout_loss"]
    assert row["parameters"] == records[0]["parameters"]
    manifest = load_manifest(corpus)
    assert row["eval_examples"] == len(heldout_examples(manifest, 10, seed=0))
    assert 0.0 <= row["edit_similarity"] <= 1.0
    trained, _ = log.stat().st_mtime_ns, capsys.readouterr()
    row = sweep(corpus, out, "--points", "base", "--train-steps", "10", "--eval-limit", "2")
    assert row["points"][0]["eval_examples"] == 6  # measured again with the new limit ...
    assert log.stat().st_mtime_ns == trained  # ... on the model trained before
    err = capsys.readouterr().err
    assert "measuring" in err and "training" not in err
    assert row["points"][0]["latency_machine"] == "here"
    assert main(sweep_argv(corpus, out, "--points", "base", "--latency-only")) == 2
    assert "holds a trained run that random weights would replace" in capsys.readouterr().err
    assert log.stat().st_mtime_ns == trained
    other = sweep_argv(corpus, out, "--latency-from", str(measured), "--max-tokens", "8")
    assert main(other) == 2
    assert "was measured with other max_tokens" in capsys.readouterr().err


def test_pick_is_best_quality_within_budget_or_largest_without_quality() -> None:
    rows = [
        {"name": "fast", "parameters": 1, "warm_p50_ms": 10.0, "edit_similarity": 0.2},
        {"name": "good", "parameters": 2, "warm_p50_ms": 20.0, "edit_similarity": 0.4},
        {"name": "slow", "parameters": 3, "warm_p50_ms": 30.0, "edit_similarity": 0.9},
    ]
    for row in rows:
        row["exact_match"] = 0.0
    assert pick(rows, 25.0)["name"] == "good"
    assert pick(rows, 5.0) is None
    unscored = [{**r, "edit_similarity": None} for r in rows]
    assert pick(unscored, 25.0)["name"] == "good" and pick(unscored, 40.0)["name"] == "slow"


def test_window_keeps_the_cursor_side_lines_within_the_token_budget() -> None:
    count = load_tokenizer(REPO / "models" / "tokenizer.json").encode
    tokens = lambda text: len(count(text, add_special_tokens=False).ids)  # noqa: E731
    text = (REPO / "engine" / "model.py").read_text()
    cut = len(text) // 2
    example = Example("m.py", "python", "single-line", text[:cut], "x", text[cut:])
    fitted = window(example, tokens, 256)
    assert tokens(fitted.suffix) <= 64 and tokens(fitted.prefix) + tokens(fitted.suffix) <= 256
    assert example.prefix.endswith(fitted.prefix) and example.suffix.startswith(fitted.suffix)
    assert tokens(fitted.prefix) > 150  # the prefix takes what the suffix leaves


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--plan", "nope"], "unknown sweep plan 'nope'"),
        (["--plan", "tiny", "--points", "base,zzz"], "plan tiny has no point zzz"),
        (["--plan", "tiny", "--corpus", "/nonexistent/c.json"], "corpus manifest not found"),
    ],
)
def test_bad_plans_points_and_corpora_fail_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["sweep", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_shape_the_model_rejects_names_the_point(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    plan = tmp_path / "odd.json"
    points = {"ok": {}, "odd": {"d_model": 100, "n_heads": 3}}
    plan.write_text(json.dumps({"train_preset": "tiny", "points": points}))
    assert main(["sweep", "--plan-file", str(plan), "--corpus", "/nonexistent.json"]) == 2
    err = capsys.readouterr().err
    assert "plan odd, point odd: d_model (100) must be divisible by n_heads (3)" in err
    plan.write_text("{not json")
    assert main(["sweep", "--plan-file", str(plan)]) == 2
    assert "is not a readable JSON file" in capsys.readouterr().err
