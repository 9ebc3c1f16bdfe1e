"""`diffill sweep`: model shapes under the latency budget, quality against warm latency.

Each point of a plan (plan.py) goes through the real commands, one at a time:
a tokenizer of its vocabulary (`diffill tokenizer`, once per size, unless the shipped one
fits), a short `diffill train` run (or, with --latency-only, random weights of that shape:
the cost of a step does not depend on the weights), `diffill export`, then latency on ONNX
Runtime with the server's threads and step cap, and `diffill eval`'s scoring on held-out
examples. Every finished stage is kept in the sweep folder, so a rerun (after a crash, or
with more points) redoes nothing that already matches its settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from diffill.evaluation.evaluate import Example, heldout_examples
from diffill.evaluation.sweep.measure import (
    LATENCY_SETTINGS,
    SERVER_THREADS,
    borrowed_row,
    load_borrowed,
    measure_model,
)
from diffill.evaluation.sweep.plan import PLANS, Plan, Point, load_plan
from diffill.evaluation.sweep.report import pick, report
from engine.checkpoint import TOKENIZER_FILE
from engine.completer import DEFAULT_STEPS, CompletionRequest
from engine.errors import DiffillError, InputError

CONTEXT_TOKENS = 1024  # the server's context budget, lsp_server/config.py `budgetTokens`
THRESHOLD = CompletionRequest.threshold  # the server's default
RESULT_FILE, BUILD_FILE, LOG_FILE = "result.json", "build.json", "commands.log"
MODEL_DIR, RUN_DIR = "model", "run"


@dataclass(frozen=True)
class Sweep:
    """What every point shares: the plan, the settings its cache is keyed on, the data."""

    plan: Plan
    settings: dict
    out: Path
    manifest: dict
    positions: list[Example]  # held-out single-line positions for latency
    remeasure: bool = False  # measure again even when the cached figures match
    borrowed: dict = dataclasses.field(default_factory=dict)  # --latency-from rows by name


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", default="cpu", help=f"one of {', '.join(PLANS)} (default cpu)")
    parser.add_argument("--plan-file", type=Path, help="a JSON plan instead of a named one")
    parser.add_argument("--points", default="", help="comma list of the plan's points (all)")
    parser.add_argument("--out", type=Path, help="sweep folder (default runs/sweep-PLAN)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus.json"), help="manifest")
    parser.add_argument("--latency-only", action="store_true", help="random weights, no training")
    parser.add_argument("--minutes", type=float, help="training minutes per point (the plan's)")
    parser.add_argument("--train-steps", type=int, default=0, help="cap on training steps")
    parser.add_argument("--positions", type=int, default=48, help="held-out latency positions")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds; medians reported")
    parser.add_argument("--max-tokens", type=int, default=16, help="of a latency request")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps per block")
    parser.add_argument("--eval-limit", type=int, default=10, help="eval examples per span kind")
    parser.add_argument("--budget-ms", type=float, default=25.0, help="warm p50 budget")
    parser.add_argument(
        "--latency-from",
        type=Path,
        help="take each point's latency from this earlier --json (same name and shape), "
        "e.g. a latency-only sweep on the 2-core target, instead of measuring it here",
    )
    parser.add_argument("--remeasure", action="store_true", help="keep the models, measure again")
    parser.add_argument("--json", type=Path, help="also write the rows and the pick here")


def run(args: argparse.Namespace) -> int:
    from engine.training.corpus import load_manifest

    plan = load_plan(args.plan, args.plan_file)
    points = plan.select([n.strip() for n in args.points.split(",") if n.strip()])
    if args.positions < 2 or min(args.rounds, args.eval_limit, args.steps, args.max_tokens) < 1:
        raise InputError("--positions needs 2 at least; --rounds, --eval-limit, --steps 1")
    manifest = load_manifest(args.corpus)
    out = args.out or Path("runs") / f"sweep-{plan.name}"
    positions = latency_positions(manifest, args)
    settings = sweep_settings(args, plan, len(positions))
    borrowed = load_borrowed(args.latency_from, settings) if args.latency_from else {}
    sweep = Sweep(plan, settings, out, manifest, positions, args.remeasure, borrowed)
    rows = [sweep_point(sweep, point, f"{i}/{len(points)}") for i, point in enumerate(points, 1)]
    print(report(rows, sweep.settings))
    if args.json:
        best = pick(rows, args.budget_ms)
        record = {"settings": sweep.settings, "points": rows, "pick": best and best["name"]}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


def sweep_settings(args: argparse.Namespace, plan: Plan, found: int) -> dict:
    """Everything the table's notes and the cache keys need; `found`: latency positions."""
    import onnxruntime

    return {
        "plan": plan.name,
        "train_preset": plan.train_preset,
        "minutes": plan.minutes if args.minutes is None else args.minutes,
        "train_steps": args.train_steps,
        "latency_only": args.latency_only,
        "corpus": str(Path(args.corpus).resolve()),
        "positions": args.positions,
        "rounds": args.rounds,
        "positions_found": found,
        "max_tokens": args.max_tokens,
        "steps": args.steps,
        "threshold": THRESHOLD,
        "context_tokens": CONTEXT_TOKENS,
        "threads": SERVER_THREADS,
        "eval_limit": args.eval_limit,
        "budget_ms": args.budget_ms,
        "latency_from": str(args.latency_from) if args.latency_from else None,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}",
    }


def latency_positions(manifest: dict, args: argparse.Namespace) -> list[Example]:
    found = heldout_examples(manifest, args.positions, seed=1)
    single = [e for e in found if e.kind == "single-line"]
    if len(single) < 2:
        raise InputError(f"corpus {args.corpus} has too few held-out files for latency positions")
    return single


def recipe(sweep: Sweep, point: Point) -> dict:
    """What a point's cached stages depend on: `build` for the model, `measure` for figures."""
    s = sweep.settings
    build_keys = ("train_preset", "minutes", "train_steps", "latency_only", "corpus")
    measure_keys = (*LATENCY_SETTINGS, "latency_from")
    if not s["latency_only"]:
        measure_keys += ("eval_limit",)
    return {
        "build": {"shape": point.shape(), **{k: s[k] for k in build_keys}},
        "measure": {k: s[k] for k in measure_keys},
    }


def sweep_point(sweep: Sweep, point: Point, counter: str) -> dict:
    """One point's row, from the cache when its recipe is unchanged."""
    from engine.checkpoint import parameter_count

    folder, wanted = sweep.out / point.name, recipe(sweep, point)
    cached = read_json(folder / RESULT_FILE)
    if cached is not None and cached.get("recipe") == wanted and not sweep.remeasure:
        note(sweep, point, counter, f"cached in {folder}")
        return cached
    model = ensure_model(sweep, point, counter, wanted["build"])
    note(sweep, point, counter, "measuring")
    data = (sweep.manifest, sweep.positions)
    row = {
        "name": point.name,
        **point.shape(),
        "parameters": parameter_count(model),
        **training_figures(folder / RUN_DIR),
        **measure_model(model, sweep.settings, data, borrowed_row(sweep.borrowed, point)),
        "recipe": wanted,
    }
    write_json(folder / RESULT_FILE, row)
    return row


def ensure_model(sweep: Sweep, point: Point, counter: str, build: dict) -> Path:
    """The point's exported model folder: kept when built with the same recipe, else rebuilt."""
    folder = sweep.out / point.name
    model = folder / MODEL_DIR
    if read_json(folder / BUILD_FILE) == build:
        return model
    from engine.training.checkpoint import has_checkpoint

    if build["latency_only"] and has_checkpoint(folder / RUN_DIR):
        raise InputError(
            f"{folder} holds a trained run that random weights would replace: "
            "give the latency-only sweep another --out"
        )
    for stale in (folder / RESULT_FILE, folder / BUILD_FILE):
        stale.unlink(missing_ok=True)
    for stale in (model, folder / RUN_DIR):
        shutil.rmtree(stale, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer_for(sweep, point)
    if sweep.settings["latency_only"]:
        note(sweep, point, counter, "random weights")
        random_model(point, tokenizer, model)
    else:
        note(sweep, point, counter, f"training {sweep.settings['minutes']:g} min")
        diffill(train_argv(sweep, point, tokenizer), folder / LOG_FILE, point.name)
    note(sweep, point, counter, "exporting")
    diffill(["export", "--model", str(model)], folder / LOG_FILE, point.name)
    write_json(folder / BUILD_FILE, build)
    return model


def tokenizer_for(sweep: Sweep, point: Point) -> Path:
    """The shipped tokenizer when its size matches, else one trained on the corpus (cached)."""
    from engine.loading import default_model_path
    from engine.tokenizer import load_tokenizer

    size = point.config.vocab_size
    shipped = default_model_path() / TOKENIZER_FILE
    if shipped.is_file() and load_tokenizer(shipped).get_vocab_size() == size:
        return shipped
    corpus = hashlib.sha1(sweep.settings["corpus"].encode()).hexdigest()[:8]
    path = sweep.out / "tokenizers" / f"vocab-{size}-{corpus}.json"  # one per corpus and size
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.stem + ".partial.json")
        argv = ["tokenizer", "--corpus", sweep.settings["corpus"], "--out", str(partial)]
        diffill([*argv, "--vocab-size", str(size)], path.parent / LOG_FILE, point.name)
        partial.replace(path)
    found = load_tokenizer(path).get_vocab_size()
    if found != size:
        raise InputError(
            f"point {point.name}: the corpus yields a {found}-token vocabulary, not {size}: "
            f"too little text for that size ({path})"
        )
    return path


def random_model(point: Point, tokenizer: Path, folder: Path) -> None:
    """A model folder of the point's shape with seeded random weights."""
    import torch

    from engine.model import DiffusionFIM
    from engine.training.checkpoint import save_model_folder

    torch.manual_seed(0)
    save_model_folder(folder, DiffusionFIM(point.config), tokenizer)


def train_argv(sweep: Sweep, point: Point, tokenizer: Path) -> list[str]:
    """`diffill train` for this point: the plan's preset with the point's shape set."""
    s, folder = sweep.settings, sweep.out / point.name
    argv = ["train", "--preset", s["train_preset"], "--corpus", s["corpus"]]
    argv += ["--tokenizer", str(tokenizer), "--max-minutes", str(s["minutes"])]
    argv += ["--run-dir", str(folder / RUN_DIR), "--out", str(folder / MODEL_DIR)]
    if s["train_steps"]:
        argv += ["--max-steps", str(s["train_steps"])]
    for key, value in point.shape().items():
        if key != "vocab_size":  # comes from the tokenizer
            argv += ["--model-set", f"{key}={value}"]
    return argv


def diffill(argv: list[str], log_path: Path, what: str) -> None:
    """Run one diffill command in its own process, its output appended to log_path."""
    with log_path.open("a") as handle:
        handle.write("$ diffill " + " ".join(argv) + "\n")
        handle.flush()
        command = [sys.executable, "-m", "diffill", *argv]
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        lines = log_path.read_text().strip().splitlines()
        raise DiffillError(
            f"point {what}: `diffill {argv[0]}` failed (exit {done.returncode}): "
            f"{lines[-1] if lines else 'no output'} (log: {log_path})"
        )


def training_figures(run_dir: Path) -> dict:
    """Tokens seen and the last held-out loss of a training run; None without one."""
    from engine.training.checkpoint import LOG_FILE as TRAIN_LOG_FILE
    from engine.training.checkpoint import STATE_FILE, checkpoint_dir

    state = read_json(checkpoint_dir(run_dir) / STATE_FILE)
    if state is None:
        return {"tokens_seen": None, "heldout_loss": None, "train_minutes": None}
    losses = [
        record["heldout_loss"]
        for line in (run_dir / TRAIN_LOG_FILE).read_text().splitlines()
        if "heldout_loss" in (record := json.loads(line))
    ]
    return {
        "tokens_seen": state["tokens"],
        "heldout_loss": losses[-1] if losses else None,
        "train_minutes": state["elapsed_s"] / 60,
    }


def note(sweep: Sweep, point: Point, counter: str, what: str) -> None:
    print(f"sweep {sweep.plan.name} {counter} {point.name}: {what}", file=sys.stderr, flush=True)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json(path: Path, value: dict) -> None:
    """Written whole or not at all: a crash mid-write leaves no half result behind."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=1) + "\n")
    partial.replace(path)
