"""`diffill bench train`: training throughput against this machine's own matmul rate.

The CPU era trains the model from idle time, so every token/s counts. This measures the
peak the hardware gives one fp32 matmul (the ceiling), then real training steps of the
default model on real FIM batches in several variants (threads, batch size, torch.compile,
bf16 autocast, the data path), and reports tok/s and achieved GFLOP/s, FLOPs counted by
torch's FlopCounterMode on one step (forward and backward), as a share of that ceiling.
A benchmark, not a test; the CLI pauses the background run while it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from engine.config import TrainConfig, model_preset, train_preset

MATMUL_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    threads: int = 2
    batch_size: int = 8
    compile: bool = False
    bf16: bool = False
    sparse_head: bool = True


VARIANTS = (
    Variant("default (2 threads, batch 8)"),
    Variant("dense head", sparse_head=False),
    Variant("1 thread", threads=1),
    Variant("batch 4", batch_size=4),
    Variant("batch 16", batch_size=16),
    Variant("batch 32", batch_size=32),
    Variant("bf16 autocast", bf16=True),
    Variant("torch.compile", compile=True),
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, default=None, help="corpus manifest")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    parser.add_argument(
        "--variants",
        default=",".join(str(i) for i in range(len(VARIANTS))),
        help="comma list of variant numbers: "
        + "; ".join(f"{i} {v.name}" for i, v in enumerate(VARIANTS)),
    )
    parser.add_argument("--seq-len", type=int, default=TrainConfig.seq_len)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the table: where the first variant's step spends its time, per operator",
    )


def matmul_rate(threads: int, size: int = MATMUL_SIZE, repeats: int = 20) -> float:
    """The best GFLOP/s of an fp32 (size x size) @ (size x size) on `threads` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times) / 1e9


def step_flops(model: torch.nn.Module, batch: tuple, settings: TrainConfig) -> float:
    """FLOPs of one training step's forward and backward, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    from engine.training.train import compute_loss

    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = compute_loss(model, batch[0], batch[1], settings, torch.Generator())
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


@dataclasses.dataclass
class Setup:
    """What one variant's timed steps run on."""

    settings: TrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    stepper: torch.nn.Module  # the model, or its torch.compile wrapper
    stream: Iterator
    batches: list
    precision: contextlib.AbstractContextManager


def prepare(variant: Variant, loader_of, steps: int, seq_len: int) -> Setup:
    """A fresh default model, its optimizer and `steps` + 2 real batches for one variant."""
    from engine.model import DiffusionFIM
    from engine.training.train import make_optimizer

    torch.set_num_threads(variant.threads)
    settings = train_preset(
        "default", batch_size=variant.batch_size, seq_len=seq_len, sparse_head=variant.sparse_head
    )
    torch.manual_seed(0)
    model = DiffusionFIM(model_preset("default"))
    stream = iter(loader_of(settings))
    return Setup(
        settings=settings,
        model=model,
        optimizer=make_optimizer(model, settings, "cpu"),
        stepper=torch.compile(model) if variant.compile else model,
        stream=stream,
        batches=[next(stream)[:2] for _ in range(steps + 2)],
        precision=(
            torch.autocast("cpu", dtype=torch.bfloat16)
            if variant.bf16
            else contextlib.nullcontext()
        ),
    )


def timed_steps(setup: Setup, on_step: Callable[[], object] | None = None) -> list[float]:
    """Seconds of each training step after two warm-up steps (and compilation); `on_step`
    runs after every step, warm-up included."""
    from engine.training.train import train_step

    settings, generator = setup.settings, torch.Generator().manual_seed(0)
    times = []
    with setup.precision:
        for index, (ids, roles) in enumerate(setup.batches):
            start = time.perf_counter()
            train_step(setup.stepper, setup.optimizer, ids, roles, settings, generator, settings.lr)
            if index >= 2:
                times.append(time.perf_counter() - start)
            if on_step is not None:
                on_step()
    return times


def measure(variant: Variant, loader_of, steps: int, seq_len: int, peak: dict) -> dict:
    """Median step time of one variant; FLOPs counted once; data time measured separately."""
    setup = prepare(variant, loader_of, steps, seq_len)
    flops = step_flops(setup.model, setup.batches[0], setup.settings)
    times = timed_steps(setup)
    data_start = time.perf_counter()
    for _ in range(steps):
        next(setup.stream)
    data_s = (time.perf_counter() - data_start) / steps
    step_s = statistics.median(times)
    tokens = variant.batch_size * seq_len
    return {
        "variant": variant.name,
        "step_s": step_s,
        "tokens_per_s": tokens / step_s,
        "gflops": flops / step_s / 1e9,
        "share": flops / step_s / 1e9 / peak[variant.threads],
        "data_tokens_per_s": tokens / data_s,
    }


def profile(variant: Variant, loader_of, steps: int, seq_len: int) -> str:
    """Self CPU time per operator over the timed steps of one variant: where the share of
    the matmul peak that a step does not reach goes."""
    from torch.profiler import ProfilerActivity, schedule
    from torch.profiler import profile as torch_profile

    setup = prepare(variant, loader_of, steps, seq_len)
    warm_up_first = schedule(wait=1, warmup=1, active=steps, repeat=1)
    with torch_profile(activities=[ProfilerActivity.CPU], schedule=warm_up_first) as profiler:
        timed_steps(setup, on_step=profiler.step)
    title = f"{variant.name}, seq_len {seq_len}: self CPU time of {steps} steps after 2 warm-up"
    table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
    return f"{title}\n{table}"


def run(args: argparse.Namespace) -> int:
    from diffill.evaluation.evaluate import load_or_build_manifest
    from engine.loading import default_model_path
    from engine.training.background import runs_root
    from engine.training.corpus import load_manifest
    from engine.training.data import batches

    picked = [VARIANTS[int(i)] for i in args.variants.split(",")]
    run_corpus = runs_root() / "main" / "corpus.json"
    manifest = (
        load_manifest(run_corpus)
        if args.manifest is None and run_corpus.exists()
        else load_or_build_manifest(args.manifest)
    )
    tokenizer = default_model_path() / "tokenizer.json"
    canvas = model_preset("default").canvas_size

    def loader_of(settings: TrainConfig):
        return batches(manifest, "train", tokenizer, settings, canvas, seed=0)

    if args.profile:
        print(profile(picked[0], loader_of, args.steps, args.seq_len))
        return 0
    peak = {threads: matmul_rate(threads) for threads in sorted({v.threads for v in picked})}
    rows = [measure(v, loader_of, args.steps, args.seq_len, peak) for v in picked]
    print(table(rows, peak, args))
    return 0


def table(rows: list[dict], peak: dict[int, float], args: argparse.Namespace) -> str:
    ceilings = ", ".join(f"{t} thread{'s' * (t > 1)} {g:.0f} GFLOP/s" for t, g in peak.items())
    lines = [
        f"fp32 {MATMUL_SIZE}x{MATMUL_SIZE} matmul peak: {ceilings}; default model, "
        f"seq_len {args.seq_len}, median of {args.steps} steps",
        "",
        "| variant | step s | tok/s | GFLOP/s | of matmul peak | data path tok/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['step_s']:.2f} | {r['tokens_per_s']:.0f} "
            f"| {r['gflops']:.0f} | {r['share']:.0%} | {r['data_tokens_per_s']:.0f} |"
        )
    return "\n".join(lines)
