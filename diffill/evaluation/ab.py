"""`diffill ab`: short A/B runs of training choices on the same token budget, from the same
weights, on the same data, compared on held-out loss (as trained, and its parts on text alone,
which compare across `--ar-weight` and `--eom-pad-weight`) and the fixed eval set.

Each variant is `NAME: TRAIN OPTIONS` (for example `lr-1e-3: --lr 1e-3`, `two-canvases:
--canvases-per-context 2`); a `baseline` with no options always runs. Every variant starts
from the long-lived run's current EMA weights with a fresh optimizer, reads the run's corpus
from the same position, trains `--tokens` tokens with the continual preset (no EMA: a short
run's EMA would be its starting point; a short warm-up, SHORT_RUN), and is scored on raw
weights. Runs are cached by
their options, so a table grows as variants are added.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from engine.errors import InputError

BASELINE = "baseline"
# A short run's fresh optimizer warms up in 10 steps, not the main run's 100 (a 150k-token
# variant has about 70 steps: it would end still warming up), and its held-out loss is taken
# on 16 batches, not 4, so that variants a few hundredths apart can be told apart.
SHORT_RUN = ("--warmup-steps", "10", "--eval-batches", "16")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, help="the long-lived run (default its usual place)")
    parser.add_argument("--out", type=Path, default=Path("runs/ab"), help="A/B runs folder")
    parser.add_argument("--tokens", type=int, default=200_000, help="training tokens per variant")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="'NAME: OPTIONS'",
        help="a variant: a name, a colon, then `diffill train` options (repeatable)",
    )
    parser.add_argument("--eval-limit", type=int, default=50, help="fixed-set examples per kind")


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, colon, options = text.partition(":")
    if not colon or not name.strip() or "/" in name:
        raise InputError(f"variant {text!r} must read 'NAME: OPTIONS', NAME without '/'")
    return name.strip(), shlex.split(options)


def train_variant(base: Path, corpus: Path, folder: Path, options: list[str], tokens: int) -> None:
    """Train one variant unless a finished run with the same options is already there."""
    from diffill.cli import main

    record = {"options": options, "tokens": tokens, "base": str(base)}
    done = folder / "ab.json"
    if done.exists() and json.loads(done.read_text()) == record:
        return
    argv = ["train", "--preset", "continual", "--run-dir", str(folder / "run")]
    argv += ["--init-from", str(base), "--corpus", str(corpus), "--ema-decay", "0"]
    argv += ["--max-tokens", str(tokens), *SHORT_RUN, *options]
    if main(argv) != 0:
        raise InputError(f"variant in {folder} failed to train: diffill {shlex.join(argv)}")
    done.write_text(json.dumps(record) + "\n")


def last_heldout(run: Path) -> dict:
    """The last held-out record: the loss as trained and its parts on text alone."""
    from engine.training.background import read_log

    records = [r for r in read_log(run) if r.get("heldout_loss") is not None]
    return records[-1] if records else {}


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    from diffill.evaluation.evaluate import example_set, score_models
    from diffill.evaluation.ship import EVAL_SET_FILE
    from engine.training.background import runs_root
    from engine.training.checkpoint import checkpoint_dir, snapshot

    run_dir = (args.run_dir or runs_root() / "main").expanduser()
    variants = dict([(BASELINE, []), *map(parse_variant, args.variant)])
    base = args.out / "base"
    if not (base / "lineage.json").exists():
        snapshot(run_dir, base)
    corpus = run_dir / "corpus.json"
    for name, options in variants.items():
        train_variant(base, corpus, args.out / name, options, args.tokens)
    examples = example_set(run_dir / EVAL_SET_FILE, corpus, args.eval_limit)
    opening = {"runtime": "torch", "device": "cpu", "threads": 2}  # no graphs in a run
    print(f"{args.tokens:,} training tokens per variant from {base}; fixed set {len(examples)}")
    print()
    print(
        "| variant | options | held-out loss | held-out diffusion, text | held-out next-token, "
        "text | single-line exact | single-line edit sim | multi-line edit sim |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, options in variants.items():
        run = args.out / name / "run"
        rows = score_models([checkpoint_dir(run)], examples, opening, with_ar=False)
        mine = {r["kind"]: r for r in rows if r["answer"] == "diffusion"}
        heldout = last_heldout(run)
        print(
            f"| {name} | {shlex.join(options)} | {number(heldout.get('heldout_loss'))} "
            f"| {number(heldout.get('heldout_diffusion_text'))} "
            f"| {number(heldout.get('heldout_next_token_text'))} "
            f"| {mine['single-line']['exact_match']:.1%} "
            f"| {mine['single-line']['edit_similarity']:.3f} "
            f"| {mine['multi-line']['edit_similarity']:.3f} |"
        )
    return 0
