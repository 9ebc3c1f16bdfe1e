"""`diffill bench steps`: one model call at a time, model folder against model folder.

The graphs of two exports of the same weights (say, before and after a change to
engine/inference.py) are timed side by side in one run, calls interleaved so that the
machine's drift falls on both alike: a warm denoising step (one 16-token canvas over a cached
context of P tokens, as a request runs it) and a keystroke's encode (three new context tokens
appended to P, as the server's pre-encode runs it, the copy of the cache included). Both go
through `OnnxRuntime`, so the numpy around each call counts too. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from diffill.evaluation.bench_lsp import flops_per_token, matmul_gflops, percentile
from engine.checkpoint import load_config
from engine.embedded import ENCODE_CHUNK

KEYSTROKE_TOKENS = 3  # what one keystroke at the end of a line adds to the context, about


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", default="models", help="comma list of model folders, each with its graphs"
    )
    parser.add_argument("--contexts", default="16,512,1024", help="cached context lengths P")
    parser.add_argument("--runtimes", default="onnx-int8,onnx", help="onnx, onnx-int8 or both")
    parser.add_argument("--runs", type=int, default=60, help="calls of each kind per row")
    parser.add_argument("--threads", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    from engine.runtime_onnx import OnnxRuntime

    runtimes = {
        (folder, name): OnnxRuntime(Path(folder), threads=args.threads, int8=name == "onnx-int8")
        for folder in args.models.split(",")
        for name in args.runtimes.split(",")
    }
    rows = []
    for context in (int(p) for p in args.contexts.split(",")):
        timings = measure(runtimes, context, args.runs)
        rows += [(*key, context, *timings[key]) for key in runtimes]
    print(table(rows, Path(args.models.split(",")[0])))
    return 0


def measure(runtimes: dict, context: int, runs: int) -> dict:
    """Median and p95 ms of a denoising step and of a keystroke's encode, per runtime, at one
    context length; the runtimes take turns call by call."""
    first = next(iter(runtimes.values()))
    config, rng = first.config, np.random.default_rng(context)
    ids = rng.integers(5, config.vocab_size, (1, context), dtype=np.int64)
    canvas = np.full((1, config.canvas_size), 3, dtype=np.int64)  # all <mask>: a first step
    typed = rng.integers(5, config.vocab_size, (1, KEYSTROKE_TOKENS), dtype=np.int64)
    caches = {key: encoded(rt, ids) for key, rt in runtimes.items()}
    steps: dict = {key: [] for key in runtimes}
    encodes: dict = {key: [] for key in runtimes}
    for _ in range(runs):
        for key, rt in runtimes.items():
            steps[key].append(_ms(rt.denoise, canvas, caches[key]))
            encodes[key].append(_ms(rt.encode, typed, caches[key]))
    return {key: (*_summary(steps[key]), *_summary(encodes[key])) for key in runtimes}


def encoded(runtime, ids: np.ndarray) -> np.ndarray:
    """The cache of `ids`, encoded in the server's chunks."""
    config = runtime.config
    shape = (config.n_layers, 2, 1, config.n_heads, 0, config.head_dim)
    kv = np.zeros(shape, dtype=np.float32)
    for begin in range(0, ids.shape[1], ENCODE_CHUNK):
        kv = runtime.encode(ids[:, begin : begin + ENCODE_CHUNK], kv)
    return kv


def _ms(call, *arguments) -> float:
    start = time.perf_counter()
    call(*arguments)
    return (time.perf_counter() - start) * 1000


def _summary(ms: list[float]) -> tuple[float, float]:
    warm = ms[len(ms) // 10 :]  # the first calls of a shape pay ONNX Runtime's set-up
    return statistics.median(warm), percentile(warm, 0.95)


def table(rows: list[tuple], model: Path) -> str:
    rate = matmul_gflops()
    lines = [
        "| model | runtime | context P | step p50 ms | step p95 ms | step / floor "
        "| keystroke encode p50 ms | p95 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    canvas = load_config(model).canvas_size
    for folder, name, context, step, step95, encode, encode95 in rows:
        floor = canvas * flops_per_token(model, context) / 1e9 / rate * 1000
        lines.append(
            f"| {folder} | {name} | {context} | {step:.2f} | {step95:.2f} | "
            f"{step / floor:.1f}x | {encode:.2f} | {encode95:.2f} |"
        )
    return "\n".join(lines) + f"\n\nfp32 matmul rate this run: {rate:.0f} GFLOP/s (the floor)."
