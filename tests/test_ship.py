"""`diffill ship`: the shipping rule's golden cases, the model card's legs table, and a leg
scored, installed and drawn with the tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_continual import continual_argv, write_corpus
from tiny_model import build_model_folder

from diffill.cli import main
from diffill.evaluation.ship import (
    TABLE_END,
    TABLE_START,
    better,
    draw_curve,
    install,
    legs_table,
    pooled,
    update_card,
)
from engine.checkpoint import load_weights
from engine.errors import InputError
from engine.training.checkpoint import LINEAGE_FILE

REPO = Path(__file__).resolve().parents[1]


def figures(exact: float, similarity: float) -> dict:
    return {"exact_match": exact, "edit_similarity": similarity}


@pytest.mark.parametrize(
    ("candidate", "shipped", "ships", "because"),
    [
        (figures(0.10, 0.30), figures(0.05, 0.40), True, "better exact match"),
        (figures(0.05, 0.41), figures(0.05, 0.40), True, "edit similarity, exact no worse"),
        (figures(0.04, 0.60), figures(0.05, 0.40), False, "not better"),
        (figures(0.05, 0.40), figures(0.05, 0.40), False, "not better"),
        (figures(0.0, 0.39), figures(0.0, 0.40), False, "not better"),
    ],
)
def test_the_shipping_rule(candidate: dict, shipped: dict, ships: bool, because: str) -> None:
    decision, reason = better(candidate, shipped)
    assert decision is ships and because in reason


def test_the_rule_pools_every_span_kind_weighted_by_examples() -> None:
    def row(model: str, kind: str, examples: int, exact: float, answer: str = "diffusion") -> dict:
        named = {"model": model, "answer": answer, "kind": kind, "examples": examples}
        return named | figures(exact, exact / 2)

    rows = [
        row("leg", "single-line", 200, 0.9),  # a kind's own row is not the pool
        row("leg", "all", 600, 0.01),
        row("leg", "all", 200, 0.05),  # a second language
        row("leg", "all", 600, 0.5, answer="ar"),
        row("models", "all", 600, 0.2),
    ]
    assert pooled(rows, "leg") == pytest.approx({"exact_match": 0.02, "edit_similarity": 0.01})


LEG = {
    "date": "2026-12-02",
    "tokens": 3_500_000,
    "heldout_loss": 7.25,
    "train_tokens_per_s": 812.0,
    "kinds": {
        "single-line": {
            "exact_match": 0.035,
            "edit_similarity": 0.31,
            "plausible_share": 0.5,
            "empty_share": 0.01,
        },
        "multi-line": {"exact_match": 0.0, "edit_similarity": 0.2},
    },
}


def test_the_legs_table_has_a_row_per_leg_and_replaces_only_its_section(tmp_path: Path) -> None:
    card = tmp_path / "MODEL_CARD.md"
    card.write_text(f"# card\n\nbefore\n{TABLE_START}\nold table\n{TABLE_END}\nafter\n")
    update_card(card, [LEG, {**LEG, "tokens": 9_000_000, "heldout_loss": None}])
    text = card.read_text()
    assert text.startswith("# card\n\nbefore\n") and text.endswith(f"{TABLE_END}\nafter\n")
    assert "old table" not in text
    rows = [line for line in text.splitlines() if line.startswith("| 2026-12-02")]
    assert rows[0].startswith("| 2026-12-02 | 3.50 M | 7.250 | 812 | 3.5% | 0.310 | 0.0% | 0.200 |")
    assert rows[1].startswith("| 2026-12-02 | 9.00 M | n/a |")
    assert rows[0].endswith("| 50.0% | 1.0% |")
    assert legs_table([LEG]).count("\n") == 2


def test_a_card_without_the_section_is_a_clear_error(tmp_path: Path) -> None:
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# card\n")
    with pytest.raises(InputError, match="no <!-- legs:start -->"):
        update_card(card, [LEG])


@pytest.fixture(scope="module")
def run_with_leg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A shipped tiny model with a card, and a long-lived run of a few steps from it."""
    base = tmp_path_factory.mktemp("ship")
    shipped = build_model_folder(base / "models")
    (shipped / LINEAGE_FILE).write_text(json.dumps({"tokens": 1000}))
    (shipped / "MODEL_CARD.md").write_text(f"# tiny\n{TABLE_START}\n{TABLE_END}\n")
    assert main(["export", "--model", str(shipped)]) == 0  # shipped folders carry their graphs
    (base / "files").mkdir()
    write_corpus(base / "files", base / "corpus.json")
    run_dir = base / "run"
    assert main(continual_argv(shipped, run_dir, "--max-steps", "3")) == 0
    shutil.copy(base / "corpus.json", run_dir / "corpus.json")
    return shipped, run_dir


def test_a_dry_run_scores_the_leg_on_a_fixed_set_and_changes_nothing(
    run_with_leg: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    shipped, run_dir = run_with_leg
    before = {p.name: p.read_bytes() for p in shipped.iterdir() if p.is_file()}
    argv = ["ship", "--run-dir", str(run_dir), "--model", str(shipped), "--limit", "1"]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"leg at {1000 + 3 * 2 * 64:,} tokens (" in out and "nothing shipped" in out
    assert "| leg | diffusion | python | single-line |" in out
    assert "| models | diffusion | python | single-line |" in out
    assert "| ar |" not in out  # a leg ships on the served mode; ar answers would only cost
    assert len(json.loads((run_dir / "eval-set.json").read_text())["examples"]) == 3
    assert {p.name: p.read_bytes() for p in shipped.iterdir() if p.is_file()} == before


def test_an_installed_leg_serves_its_weights_and_the_curve_is_drawn(
    run_with_leg: tuple[Path, Path], tmp_path: Path
) -> None:
    from engine.completer import CompletionRequest
    from engine.loading import open_completer
    from engine.training.checkpoint import snapshot

    _, run_dir = run_with_leg
    leg, model = tmp_path / "leg", build_model_folder(tmp_path / "models", seed=1)
    snapshot(run_dir, leg)
    install(leg, model)
    for name, tensor in load_weights(leg).items():
        np.testing.assert_array_equal(load_weights(model)[name], tensor)
    assert json.loads((model / LINEAGE_FILE).read_text())["tokens"] == 1000 + 3 * 2 * 64
    completer = open_completer(model, runtime="onnx")  # graphs re-exported for these weights
    assert isinstance(completer.complete(CompletionRequest("x = ", "\n")).text, str)
    curve = tmp_path / "docs" / "img" / "curve.png"
    draw_curve(run_dir, [LEG, {**LEG, "tokens": 9_000_000}], curve)
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ab_trains_each_variant_on_the_same_budget_once_and_tables_them(
    run_with_leg: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, run_dir = run_with_leg
    argv = ["ab", "--run-dir", str(run_dir), "--out", str(tmp_path), "--tokens", "4096"]
    argv += ["--variant", "high-lr: --lr 1e-2", "--eval-limit", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| baseline |  |" in out and "| high-lr | --lr 1e-2 |" in out
    for name in ("baseline", "high-lr"):
        state = json.loads(
            (tmp_path / name / "run" / "checkpoint" / "train_state.json").read_text()
        )
        assert state["tokens"] - state["start_tokens"] == 4096  # two steps of 8 x 256
    logs = {name: (tmp_path / name / "run" / "log.jsonl").read_text() for name in ("baseline",)}
    assert main(argv) == 0  # the finished variants are reused, not trained again
    assert (tmp_path / "baseline" / "run" / "log.jsonl").read_text() == logs["baseline"]


def test_a_variant_without_a_name_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["ab", "--variant", "--lr 1e-3"]) == 2
    assert "must read 'NAME: OPTIONS'" in capsys.readouterr().err
