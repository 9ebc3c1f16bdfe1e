"""The figures `diffill sweep` takes of one exported model: latency as the server asks, and
`diffill eval`'s scoring on held-out examples.

Latency requests are the server's mid-line ones: single-line, the default step cap per block,
over a context window of the server's token budget, on ONNX Runtime with the server's
threads. A sweep measured on a machine that is not the target (a GPU host's CPU) may take its
latency from an earlier sweep's JSON instead (`--latency-from`), point by point.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path

from diffill.evaluation.evaluate import Example, answer_all, clip, heldout_examples, score_rows
from diffill.evaluation.sweep.plan import Point
from engine.completer import Completer, CompletionRequest
from engine.errors import InputError

SERVER_THREADS = 2  # ONNX Runtime intra-op threads of `diffill lsp` (engine.loading default)
EVAL_MAX_TOKENS, EVAL_PREFIX_CHARS, EVAL_SUFFIX_CHARS = 48, 3000, 1000  # diffill eval defaults
QUALITY_KEYS = ("edit_similarity", "exact_match", "empty_share")
LATENCY_KEYS = ("warm_p50_ms", "warm_p95_ms", "warm_steps", "cold_p50_ms", "cold_p95_ms")
LATENCY_SETTINGS = ("positions", "rounds", "max_tokens", "steps", "threshold", "context_tokens")
LATENCY_SETTINGS += ("threads",)


def measure_model(
    model: Path, settings: dict, data: tuple[dict, list[Example]], borrowed: dict | None
) -> dict:
    """Latency (or the borrowed row's), then quality unless latency-only, on one ONNX
    session. `data` is the corpus manifest and the latency positions."""
    from engine.loading import open_completer

    completer = open_completer(model, "onnx", None, SERVER_THREADS)
    if borrowed is not None:
        figures = {k: borrowed[k] for k in (*LATENCY_KEYS, "load_average", "latency_machine")}
    else:
        figures = {**latency(settings, completer, data[1]), "latency_machine": "here"}
    if settings["latency_only"]:
        return {**figures, "eval_examples": 0, **dict.fromkeys(QUALITY_KEYS)}
    return {**figures, **quality(settings, completer, data[0])}


def latency(settings: dict, completer: Completer, positions: list[Example]) -> dict:
    """Warm and cold single-line requests as the server makes them, over server-sized windows,
    in rounds: each figure is the median of its rounds, so a burst of other work on a shared
    machine moves it less. The rounds' warm p50s are kept to show the spread."""
    from diffill.evaluation.bench_engine import measure

    budget = settings["context_tokens"]
    examples = [window(e, completer.count_tokens, budget) for e in positions]
    template = CompletionRequest(
        "",
        "",
        settings["max_tokens"],
        "diffusion",
        max_steps=settings["steps"],
        threshold=settings["threshold"],
        stop_at_newline=True,
    )
    load = os.getloadavg()[0]
    rounds = [
        (
            measure(completer, examples, template, True),
            measure(completer, examples, template, False),
        )
        for _ in range(settings["rounds"])
    ]
    return {
        "warm_p50_ms": statistics.median(w["p50"] for w, _ in rounds),
        "warm_p95_ms": statistics.median(w["p95"] for w, _ in rounds),
        "warm_steps": statistics.median(w["steps"] for w, _ in rounds),
        "cold_p50_ms": statistics.median(c["p50"] for _, c in rounds),
        "cold_p95_ms": statistics.median(c["p95"] for _, c in rounds),
        "warm_p50_rounds_ms": [w["p50"] for w, _ in rounds],
        "load_average": max(load, os.getloadavg()[0]),
    }


def window(example: Example, count: Callable[[str], int], budget: int) -> Example:
    """Whole lines around the cursor within `budget` tokens, the suffix taking at most a
    quarter of it, as the server's context window does (lsp_server/context.py)."""
    suffix = "".join(lines_within(example.suffix.splitlines(keepends=True), count, budget // 4))
    before = example.prefix.splitlines(keepends=True)[::-1]
    prefix = "".join(lines_within(before, count, budget - count(suffix))[::-1])
    return dataclasses.replace(example, prefix=prefix, suffix=suffix)


def lines_within(lines: list[str], count: Callable[[str], int], budget: int) -> list[str]:
    kept, used = [], 0
    for line in lines:
        used += count(line)
        if used > budget:
            break
        kept.append(line)
    return kept


def quality(settings: dict, completer: Completer, manifest: dict) -> dict:
    """Diffusion's edit similarity, exact match and empty share over every held-out example."""
    found = heldout_examples(manifest, settings["eval_limit"], seed=0)
    examples = [clip(e, EVAL_PREFIX_CHARS, EVAL_SUFFIX_CHARS) for e in found]
    answers = answer_all(completer, examples, EVAL_MAX_TOKENS, settings["steps"])
    rows = [
        r for r in score_rows(examples, answers) if (r["answer"], r["kind"]) == ("diffusion", "all")
    ]
    total = sum(r["examples"] for r in rows)
    means = {k: sum(r[k] * r["examples"] for r in rows) / total for k in QUALITY_KEYS}
    return {"eval_examples": total, **means}


def load_borrowed(path: Path, settings: dict) -> dict[str, dict]:
    """Point name -> row of an earlier sweep's --json file, checked to be measured alike."""
    try:
        record = json.loads(Path(path).read_text())
        theirs, rows = record["settings"], record["points"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"--latency-from {path} is not a diffill sweep --json file: {exc}"
        ) from None
    differ = [k for k in LATENCY_SETTINGS if theirs.get(k) != settings[k]]
    if differ:
        raise InputError(f"--latency-from {path} was measured with other {', '.join(differ)}")
    machine = theirs.get("machine", str(path))
    return {r["name"]: {**r, "latency_machine": machine} for r in rows if r.get("warm_p50_ms")}


def borrowed_row(borrowed: dict[str, dict], point: Point) -> dict | None:
    """The borrowed row of this point when it has the same shape, else None (measure here)."""
    row = borrowed.get(point.name)
    if row is None or any(row.get(k) != v for k, v in point.shape().items()):
        return None
    return row
