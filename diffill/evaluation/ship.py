"""`diffill ship`: one leg of the long-lived training run into the shipped model folder, only
when the fixed held-out set says it is better.

A leg: the run's EMA or raw weights, whichever had the lower held-out loss (`--weights`;
`diffill train --snapshot`), exported to ONNX, scored beside the
shipped model on the run's fixed example set (`diffill eval --set`: the same held-out
examples every time, 200 of each span kind by default). The rule, on the served mode's answers
pooled over every span kind: better exact match, or better edit similarity with exact match
no worse. Pooled, because exact match is rare this early: single-line alone is 2-4 examples
of 200, so one example decided. A better leg replaces
the weights in the model folder, adds a row to its legs.json and to the model card's table,
and redraws the learning curve (held-out loss and single-line exact match against tokens).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
from pathlib import Path

from engine.checkpoint import CONFIG_FILE, INDEX_FILE, TOKENIZER_FILE
from engine.errors import InputError
from engine.training.checkpoint import LINEAGE_FILE, SNAPSHOT_WEIGHTS

LEGS_FILE = "legs.json"
EVAL_SET_FILE = "eval-set.json"
CARD_FILE = "MODEL_CARD.md"
CURVE_FILE = Path("docs") / "img" / "learning-curve.png"  # beside the shipped model folder
TABLE_START, TABLE_END = "<!-- legs:start -->", "<!-- legs:end -->"
KINDS = ("single-line", "multi-line", "random-span")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, help="the long-lived run (default its usual place)")
    parser.add_argument("--model", type=Path, help="the shipped model folder (default models/)")
    parser.add_argument("--limit", type=int, default=200, help="fixed-set examples per span kind")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--weights",
        choices=SNAPSHOT_WEIGHTS,
        default="best",
        help="the checkpoint's weights to score (best: EMA or raw, the lower held-out loss)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="score and decide, change nothing shipped"
    )


def pooled(rows: list[dict], model: str) -> dict:
    """Exact match and edit similarity of a model's diffusion answers over every example (the
    `all` rows, one per language, weighted by their examples)."""
    picked = [
        r for r in rows if r["model"] == model and r["answer"] == "diffusion" and r["kind"] == "all"
    ]
    total = sum(r["examples"] for r in picked)
    return {
        name: sum(r[name] * r["examples"] for r in picked) / total
        for name in ("exact_match", "edit_similarity")
    }


def better(candidate: dict, shipped: dict) -> tuple[bool, str]:
    """The shipping rule on pooled figures (`pooled`), with the reason in words."""
    exact, shipped_exact = candidate["exact_match"], shipped["exact_match"]
    similar, shipped_similar = candidate["edit_similarity"], shipped["edit_similarity"]
    figures = (
        f"exact {exact:.1%} vs {shipped_exact:.1%}, edit similarity {similar:.3f} vs "
        f"{shipped_similar:.3f}"
    )
    if exact > shipped_exact:
        return True, f"better exact match ({figures})"
    if similar > shipped_similar and exact >= shipped_exact:
        return True, f"better edit similarity, exact no worse ({figures})"
    return False, f"not better ({figures})"


def leg_record(rows: list[dict], model: str, lineage: dict, tokens_per_s: float | None) -> dict:
    """One row of legs.json: the shipped weights' figures per span kind."""
    kinds = {
        r["kind"]: {
            key: r[key]
            for key in ("exact_match", "edit_similarity", "plausible_share", "empty_share")
        }
        for r in rows
        if r["model"] == model and r["answer"] == "diffusion" and r["kind"] in KINDS
    }
    return {
        "date": datetime.date.today().isoformat(),
        "tokens": lineage.get("tokens", 0),
        "heldout_loss": lineage.get("heldout_loss"),
        "train_tokens_per_s": tokens_per_s,
        "kinds": kinds,
    }


def leg_tokens_per_s(run_dir: Path, since_tokens: int) -> float | None:
    """Median training tok/s of the run's logged windows since the previous shipped leg."""
    from engine.training.background import read_log

    rates = [
        r["tokens_per_s"]
        for r in read_log(run_dir)
        if "tokens_per_s" in r and r.get("tokens", 0) > since_tokens
    ]
    return statistics.median(rates) if rates else None


def install(leg: Path, model: Path) -> None:
    """Replace the weights of the shipped folder with the leg's and re-export its graphs."""
    from engine.training.export import export_graphs

    for stale in [*model.glob("model*.safetensors"), model / INDEX_FILE]:
        stale.unlink(missing_ok=True)
    names = [CONFIG_FILE, INDEX_FILE, TOKENIZER_FILE, LINEAGE_FILE]
    for path in [*leg.glob("model*.safetensors"), *(leg / name for name in names)]:
        shutil.copyfile(path, model / path.name)
    export_graphs(model)


def legs_table(legs: list[dict]) -> str:
    """The model card's table: one row per shipped leg."""
    head = ["date", "tokens", "held-out loss", "train tok/s"]
    for kind in KINDS:
        head += [f"{kind} exact", f"{kind} edit sim"]
    head += ["plausible (single-line)", "empty (single-line)"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for leg in legs:
        loss, rate = leg["heldout_loss"], leg["train_tokens_per_s"]
        cells = [
            leg["date"],
            f"{leg['tokens'] / 1e6:.2f} M",
            "n/a" if loss is None else f"{loss:.3f}",
            "n/a" if rate is None else f"{rate:.0f}",
        ]
        for kind in KINDS:
            figures = leg["kinds"].get(kind, {})
            cells += [
                f"{figures.get('exact_match', 0):.1%}",
                f"{figures.get('edit_similarity', 0):.3f}",
            ]
        single = leg["kinds"].get("single-line", {})
        plausible = single.get("plausible_share")
        cells += [
            "n/a" if plausible is None else f"{plausible:.1%}",
            f"{single.get('empty_share', 0):.1%}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_card(card: Path, legs: list[dict]) -> None:
    text = card.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise InputError(f"{card} has no {TABLE_START} ... {TABLE_END} section for the legs table")
    before, rest = text.split(TABLE_START, 1)
    after = rest.split(TABLE_END, 1)[1]
    card.write_text(f"{before}{TABLE_START}\n{legs_table(legs)}\n{TABLE_END}{after}")


def draw_curve(run_dir: Path, legs: list[dict], out: Path) -> None:
    """Held-out loss (raw and EMA, from the run's log) and the shipped legs' single-line exact
    match, both against tokens seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.training.background import read_log

    losses = [r for r in read_log(run_dir) if r.get("heldout_loss") is not None]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for key, label in (("heldout_loss", "raw weights"), ("heldout_loss_ema", "EMA 0.999")):
        points = [(r["tokens"] / 1e6, r[key]) for r in losses if r.get(key) is not None]
        if points:
            top.plot(*zip(*points, strict=True), label=label)
    top.set_ylabel("held-out loss (4 fixed batches)")
    top.legend()
    shipped = [(leg["tokens"] / 1e6, leg["kinds"]["single-line"]["exact_match"]) for leg in legs]
    bottom.plot(*zip(*shipped, strict=True), marker="o")
    bottom.set_ylabel("single-line exact match")
    bottom.set_xlabel("tokens seen (millions)")
    figure.suptitle("diffill default model: the long-lived CPU run")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    from diffill.evaluation.evaluate import example_set, score_models, table
    from engine.loading import default_model_path
    from engine.training.background import runs_root
    from engine.training.checkpoint import lineage_tokens, snapshot
    from engine.training.export import export_graphs

    run_dir = (args.run_dir or runs_root() / "main").expanduser()
    model = args.model or default_model_path()
    leg = run_dir / "leg"
    shutil.rmtree(leg, ignore_errors=True)
    lineage = snapshot(run_dir, leg, args.weights)
    export_graphs(leg)
    corpus = run_dir / "corpus.json"
    examples = example_set(run_dir / EVAL_SET_FILE, corpus if corpus.exists() else None, args.limit)
    opening = {"runtime": "auto", "device": None, "threads": args.threads}  # as served
    rows = score_models([leg, model], examples, opening, with_ar=False)  # ships on diffusion
    print(table(rows))
    leg_name, model_name = rows[0]["model"], rows[-1]["model"]
    if leg_name == model_name:
        raise InputError(f"the shipped folder {model} must not be named like the leg {leg}")
    ship, reason = better(pooled(rows, leg_name), pooled(rows, model_name))
    print(f"leg at {lineage['tokens']:,} tokens ({lineage['weights']} weights): {reason}")
    if not ship or args.dry_run:
        print("nothing shipped" + (" (--dry-run)" if ship else ""))
        return 0
    legs_path = model / LEGS_FILE
    legs = json.loads(legs_path.read_text()) if legs_path.exists() else []
    if not legs:  # the first leg shipped this way: the model it replaces is row one
        legs.append(leg_record(rows, model_name, {"tokens": lineage_tokens(model)}, None))
    since = legs[-1]["tokens"]
    legs.append(leg_record(rows, leg_name, lineage, leg_tokens_per_s(run_dir, since)))
    install(leg, model)
    legs_path.write_text(json.dumps(legs, indent=1) + "\n")
    update_card(model / CARD_FILE, legs)
    draw_curve(run_dir, legs, model.resolve().parent / CURVE_FILE)
    print(f"shipped into {model}; now re-run `diffill bench lsp` and commit the model folder")
    return 0
