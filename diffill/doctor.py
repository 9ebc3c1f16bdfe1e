"""`diffill doctor`: what a model folder is, how much memory it needs, and what would run it
where on this machine. It reads JSON and safetensors headers only, so it answers in a moment
even for a 7B checkpoint, and works without torch installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DiffillError

BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1}
CONTEXT_FOR_ESTIMATE = 2048  # tokens of K/V counted in the memory estimate


@dataclass(frozen=True)
class Machine:
    ram_bytes: int
    torch_version: str | None
    cuda_name: str | None
    cuda_bytes: int
    ort_version: str | None
    ort_providers: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    kind: str
    parameters: int
    stored: str
    runtime_bytes: int
    runs_on: str
    on_gpu_bytes: int | None = None  # families without a GPU here: what bf16 on CUDA would take


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="also report this folder (a diffill model or an open-weight family)",
    )


def probe_machine() -> Machine:
    """RAM, torch/CUDA and ONNX Runtime providers, each optional."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    torch_version = cuda_name = None
    cuda_bytes = 0
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch_version = torch.__version__
        if torch.cuda.is_available():
            cuda_name = torch.cuda.get_device_name(0)
            cuda_bytes = torch.cuda.get_device_properties(0).total_memory
    ort_version, providers = None, ()
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        ort_version, providers = (
            onnxruntime.__version__,
            tuple(onnxruntime.get_available_providers()),
        )
    return Machine(ram, torch_version, cuda_name, cuda_bytes, ort_version, providers)


def family_report(folder: Path, machine: Machine) -> Report:
    from engine.checkpoint import stored_tensors
    from engine.families.spec import parse_spec

    spec, tensors = parse_spec(folder), stored_tensors(folder)
    parameters = sum(math.prod(shape) for _, shape in tensors.values())
    on_gpu = machine.cuda_name is not None
    kv_values = spec.layers * 2 * spec.kv_heads * spec.head_dim * CONTEXT_FOR_ESTIMATE
    bf16, float32 = parameters * 2 + kv_values * 2, parameters * 4 + kv_values * 4
    runs_on = f"torch on CUDA ({machine.cuda_name}), bf16" if on_gpu else "torch on CPU, float32"
    if machine.torch_version is None:
        runs_on = "nothing: open-weight families need torch (pip install diffill[train])"
    needed = bf16 if on_gpu else float32
    return Report(
        spec.name, parameters, _dtypes(tensors), needed, runs_on, None if on_gpu else bf16
    )


def embedded_report(folder: Path, machine: Machine) -> Report:
    from engine.checkpoint import load_config, stored_tensors
    from engine.runtime_onnx import graphs_exist

    config, tensors = load_config(folder), stored_tensors(folder)
    parameters = sum(math.prod(shape) for _, shape in tensors.values())
    kv = config.n_layers * 2 * config.d_model * CONTEXT_FOR_ESTIMATE * 4
    if graphs_exist(folder):
        gpu = "CUDAExecutionProvider" in machine.ort_providers
        runs_on = f"ONNX Runtime on {'CUDA' if gpu else 'CPU'}, float32"
    elif machine.torch_version is not None:
        runs_on = "torch on CPU, float32 (no ONNX graphs yet: run `diffill export`)"
    else:
        runs_on = "nothing: no ONNX graphs and no torch (run `diffill export` where torch is)"
    kind = "diffill block-causal diffusion model"
    return Report(kind, parameters, _dtypes(tensors), parameters * 4 + kv, runs_on)


def _dtypes(tensors: dict[str, tuple[str, list[int]]]) -> str:
    counts: dict[str, int] = {}
    for dtype, shape in tensors.values():
        counts[dtype] = counts.get(dtype, 0) + math.prod(shape)
    return ", ".join(f"{dtype} ({size(BYTES.get(dtype, 0) * n)})" for dtype, n in counts.items())


def size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GiB"


def report(folder: Path, machine: Machine) -> Report:
    from engine.families import is_family_folder

    if not folder.is_dir():
        raise DiffillError(f"model folder {folder} does not exist")
    return (family_report if is_family_folder(folder) else embedded_report)(folder, machine)


def describe_machine(machine: Machine) -> list[str]:
    gpu = (
        f"{machine.cuda_name} ({machine.cuda_bytes / 2**30:.0f} GiB)"
        if machine.cuda_name
        else "none visible to torch"
    )
    providers = ", ".join(machine.ort_providers) or "-"
    ort_gpu = _installed("onnxruntime-gpu")
    return [
        f"  RAM            {size(machine.ram_bytes)}",
        f"  torch          {machine.torch_version or 'not installed'}",
        f"  CUDA GPU       {gpu}",
        f"  onnxruntime    {machine.ort_version or 'not installed'} (providers: {providers})",
        f"  onnxruntime-gpu {ort_gpu or 'not installed'}",
    ]


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_model(title: str, folder: Path, machine: Machine) -> tuple[list[str], bool]:
    """Lines for one folder, and whether it is usable; a broken folder is reported, not raised."""
    lines = [f"{title}: {folder}"]
    try:
        found = report(folder, machine)
    except DiffillError as exc:
        return [*lines, f"  problem        {exc}"], False
    budget = machine.cuda_bytes if found.runs_on.startswith("torch on CUDA") else machine.ram_bytes
    fits = "" if found.runtime_bytes <= budget else "  (more than this machine has)"
    gpu = [] if found.on_gpu_bytes is None else [f"  with a GPU     torch on CUDA, bf16, "
                                                  f"about {size(found.on_gpu_bytes)}"]  # fmt: skip
    return [
        *lines,
        f"  kind           {found.kind}",
        f"  parameters     {found.parameters / 1e6:,.1f}M",
        f"  stored dtype   {found.stored}",
        f"  memory needed  {size(found.runtime_bytes)} (weights + K/V for "
        f"{CONTEXT_FOR_ESTIMATE} tokens){fits}",
        f"  would run on   {found.runs_on}",
        *gpu,
    ], True


def run(args: argparse.Namespace) -> int:
    from engine.loading import default_model_path

    machine = probe_machine()
    lines = ["diffill doctor", "machine", *describe_machine(machine)]
    healthy = True
    folders = [("default model", default_model_path())]
    if args.model is not None:
        folders.append(("--model", args.model))
    for title, folder in folders:
        model_lines, ok = describe_model(title, folder, machine)
        lines += model_lines
        healthy = healthy and ok
    print("\n".join(lines))
    return 0 if healthy else 1
