"""`diffill bench family`: how fast an open-weight diffusion coder fills a gap, DualCache on and
off, diffusion against one token per step.

The model has the published shape and random weights made on the device (no download): a
Dream-7B shape in bf16 on CUDA, or, without a GPU, the Open-dCoder 0.5B shape in float32 on
CPU. Random weights never reach the confidence threshold, so the diffusion rows run on the step
budget (`--steps`): the latency of a step does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from engine.completer import never_cancelled
from engine.families.infill import Decoded, DecodeSettings, Infiller
from engine.families.spec import DREAM, QWEN2_MDM, FamilySpec, spec_from_config
from engine.families.synthetic import (
    DREAM_7B,
    OPEN_DCODER_05B,
    TINY,
    TINY_SPECIAL,
    config_json,
    random_model,
)

QWEN_SPECIAL = {"eos": 151643, "mask": 151666}  # Dream's documented ids (Qwen2.5 vocabulary)
SHAPES = {
    "dream-7b": (DREAM, DREAM_7B, QWEN_SPECIAL),
    "open-dcoder-0.5b": (QWEN2_MDM, OPEN_DCODER_05B, {"eos": 151643, "mask": 151665}),
    "tiny": (DREAM, TINY, TINY_SPECIAL),
}
VARIANTS = (  # (mode, one token per step, DualCache)
    ("diffusion", False, True),
    ("diffusion", False, False),
    ("one token per step", True, True),
    ("one token per step", True, False),
)
ANCHOR = (
    "Anchor: Mercury Coder Mini generates 1109 tok/s on an H100 (Artificial Analysis, about "
    "1k tokens in and 1k out; research/diffusion-anchors.md §1). A different model, workload "
    "and machine: a reference point, not a comparison."
)


@dataclass(frozen=True)
class Plan:
    shape: str
    device: str
    dtype: str
    context: int
    gap: int
    steps: int
    repeats: int


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shape",
        choices=["auto", *SHAPES],
        default="auto",
        help="model shape (auto: dream-7b on CUDA, open-dcoder-0.5b on CPU)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--context",
        type=int,
        default=None,
        help="context tokens around the gap (default: 1024 on CUDA, 256 on CPU)",
    )
    parser.add_argument("--gap", type=int, default=32, help="tokens to fill")
    parser.add_argument("--steps", type=int, default=8, help="diffusion step budget")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per row, median reported (default: 3 CUDA, 1 CPU)",
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")


def plan_run(args: argparse.Namespace, cuda: bool) -> Plan:
    """Resolve the defaults; without a GPU say so and fall back to the CPU plan."""
    if args.device == "cuda" and not cuda:
        from engine.errors import ModelLoadError

        raise ModelLoadError("--device cuda requested but torch sees no CUDA GPU")
    on_gpu = args.device == "cuda" or (args.device == "auto" and cuda)
    if not on_gpu and args.device == "auto":
        print(
            "No CUDA GPU visible to torch: the Dream-7B bf16 run needs one. Falling back to "
            "CPU figures for the Open-dCoder 0.5B shape in float32.\n"
        )
    default_shape = "dream-7b" if on_gpu else "open-dcoder-0.5b"
    return Plan(
        shape=default_shape if args.shape == "auto" else args.shape,
        device="cuda" if on_gpu else "cpu",
        dtype="bfloat16" if on_gpu else "float32",
        context=args.context or (1024 if on_gpu else 256),
        gap=args.gap,
        steps=args.steps,
        repeats=args.repeats or (3 if on_gpu else 1),
    )


def bench_spec(shape: str) -> FamilySpec:
    family, dims, special = SHAPES[shape]
    config = config_json(family, dims, special)
    config.setdefault("mask_token_id", special["mask"])  # Open-dCoder names it in its tokenizer
    return spec_from_config(config, Path("."))


def timed_fill(infiller: Infiller, plan: Plan, settings: DecodeSettings) -> tuple[float, Decoded]:
    import torch

    special = {infiller.spec.mask_id, infiller.spec.eos_id}
    ids = [i % infiller.spec.vocab_size for i in range(1000, 1000 + plan.context)]
    ids = [i if i not in special else i + 2 for i in ids]  # arbitrary ordinary tokens
    cut = plan.context * 3 // 4
    infiller.forget()
    if plan.device == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    out = infiller.fill(ids[:cut], ids[cut:], plan.gap, settings, never_cancelled)
    if plan.device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - began) * 1000, out


def measure(
    infiller: Infiller, plan: Plan, variant: tuple[str, bool, bool]
) -> tuple[list[str], list[int]]:
    """One table row, and the tokens it produced (to compare DualCache with no cache)."""
    mode, one_per_step, dual_cache = variant
    settings = DecodeSettings(
        max_steps=None if one_per_step else plan.steps,
        one_per_step=one_per_step,
        dual_cache=dual_cache,
        block_size=plan.gap,
    )
    runs = [timed_fill(infiller, plan, settings) for _ in range(plan.repeats)]
    latency, out = statistics.median(ms for ms, _ in runs), runs[-1][1]
    tokens = len(out.ids)
    per_full = out.full_ms / max(out.full_forwards, 1)
    per_block = f"{out.window_ms / out.window_forwards:.0f}" if out.window_forwards else "-"
    row = [
        mode,
        "on" if dual_cache else "off",
        f"{latency:.0f}",
        str(out.steps),
        str(tokens),
        f"{tokens / latency * 1000:.1f}",
        str(out.full_forwards),
        str(out.window_forwards),
        f"{per_full:.0f}",
        per_block,
    ]
    return row, out.ids


def with_agreement(measured: list[tuple[list[str], list[int]]]) -> list[list[str]]:
    """Append, to each DualCache row, how many tokens equal the same mode without a cache
    (DualCache is Fast-dLLM's approximation: prefix/suffix K/V age within a block)."""
    exact = {row[0]: ids for row, ids in measured if row[1] == "off"}
    rows = []
    for row, ids in measured:
        same = "-"
        if row[1] == "on" and row[0] in exact:
            reference = exact[row[0]]
            matches = sum(a == b for a, b in zip(ids, reference, strict=False))
            same = f"{matches}/{max(len(ids), len(reference))}"
        rows.append([*row, same])
    return rows


def table(plan: Plan, spec: FamilySpec, parameters: int, rows: list[list[str]]) -> str:
    head = [
        "mode",
        "DualCache",
        f"latency ms (median of {plan.repeats})",
        "steps",
        "tokens",
        "tokens/s",
        "full forwards",
        "block forwards",
        "ms/full",
        "ms/block",
        "same tokens as no cache",
    ]
    lines = [
        f"### diffill bench family: {plan.shape} shape ({parameters / 1e6:.0f}M parameters, "
        f"random weights), {plan.device} {plan.dtype}",
        "",
        f"{plan.gap}-token gap, {plan.context}-token context, diffusion step budget "
        f"{plan.steps}, threshold 0.9, {spec.layers} layers.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        ANCHOR,
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    plan = plan_run(args, torch.cuda.is_available())
    spec = bench_spec(plan.shape)
    model = random_model(spec, plan.device, plan.dtype)
    infiller = Infiller(model, spec, torch.device(plan.device))
    warm_up = Plan(**{**plan.__dict__, "gap": 2})  # first calls pay one-time kernel setup
    timed_fill(infiller, warm_up, DecodeSettings(one_per_step=True, block_size=2))
    rows = with_agreement([measure(infiller, plan, variant) for variant in VARIANTS])
    print(table(plan, spec, model.num_parameters(), rows))
    return 0
