"""`diffill bench engine`: completion latency and tokens/s, diffusion against ar, per runtime.

Positions are held-out spans (as in `diffill eval`). Cold: a fresh position whose context is
encoded in the request. Warm: the same context prepared first (as the server does on
didChange), so only the canvas steps remain. A benchmark, not a test: figures vary by load.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from diffill.evaluation.evaluate import Example, clip, heldout_examples, load_or_build_manifest
from engine.completer import Completer, CompletionRequest
from engine.errors import ModelLoadError

MODES = ("diffusion", "ar")


def configure(parser: argparse.ArgumentParser) -> None:
    from engine.options import add_model_arguments

    add_model_arguments(parser, runtime=False)
    parser.add_argument("--manifest", type=Path, default=None, help="corpus manifest")
    parser.add_argument("--positions", type=int, default=4, help="held-out positions per kind")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--prefix-chars", type=int, default=3000)
    parser.add_argument("--suffix-chars", type=int, default=1000)
    parser.add_argument("--runtimes", default="onnx,torch", help="comma list of runtimes")


def run(args: argparse.Namespace) -> int:
    manifest = load_or_build_manifest(args.manifest)
    examples = heldout_examples(manifest, max(2, args.positions), seed=1)
    examples = [clip(e, args.prefix_chars, args.suffix_chars) for e in examples]
    rows = []
    for runtime in args.runtimes.split(","):
        completer = _open(args, runtime.strip())
        if completer is None:
            continue
        for mode in MODES:
            request = CompletionRequest("", "", args.max_tokens, mode, threshold=args.threshold)
            rows += [measure(completer, examples, request, warm) for warm in (False, True)]
    print(table(rows, examples, args.max_tokens))
    return 0


def _open(args: argparse.Namespace, runtime: str) -> Completer | None:
    from engine.loading import open_completer

    try:
        completer = open_completer(args.model, runtime, args.device, args.threads)
    except ModelLoadError as exc:
        print(f"| {runtime} | skipped: {exc} |")
        return None
    return completer


def measure(
    completer: Completer, examples: list[Example], template: CompletionRequest, warm: bool
) -> dict:
    """Latencies of one (runtime, mode, cache) cell over every position. A warm-up request at
    another position comes first: the first session run allocates."""
    latencies, tokens, steps, measured_steps = [], 0, 0, 0
    for index, example in enumerate([examples[-1], *examples]):
        request = _at(template, example)
        if warm:
            completer.prepare(request.prefix, request.suffix)
        start = time.perf_counter()
        result = completer.complete(request)
        latencies.append((time.perf_counter() - start) * 1000)
        first = result.candidates[0] if result.candidates else None
        tokens += first.tokens if first else 0
        steps += first.steps if first else 0
        measured_steps += first.steps if first and index else 0
    latencies = latencies[1:]
    return {
        "runtime": completer.describe()["runtime"],
        "mode": template.mode,
        "cache": "warm" if warm else "cold",
        "p50": statistics.median(latencies),
        "p95": statistics.quantiles(latencies, n=20)[-1],
        "tokens_per_s": tokens / (sum(latencies) / 1000),
        "steps": steps / (len(examples) + 1),
        # warm: the whole request is canvas steps, so this is the cost of one step
        "ms_per_step": sum(latencies) / measured_steps if measured_steps else None,
    }


def _at(template: CompletionRequest, example: Example) -> CompletionRequest:
    """The template's settings (steps cap, single-line, ...) at this example's position."""
    return dataclasses.replace(template, prefix=example.prefix, suffix=example.suffix)


def table(rows: list[dict], examples: list[Example], max_tokens: int) -> str:
    lines = [
        f"{len(examples)} held-out positions, max_tokens {max_tokens}",
        "",
        "| runtime | mode | cache | p50 ms | p95 ms | tokens/s | steps | ms / step (warm) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per_step = (
            "-" if r["cache"] == "cold" or not r["ms_per_step"] else f"{r['ms_per_step']:.2f}"
        )
        lines.append(
            f"| {r['runtime']} | {r['mode']} | {r['cache']} | {r['p50']:.1f} | {r['p95']:.1f} "
            f"| {r['tokens_per_s']:.0f} | {r['steps']:.1f} | {per_step} |"
        )
    return "\n".join(lines)
