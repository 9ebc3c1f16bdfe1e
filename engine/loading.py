"""Open a model folder as a `Completer`: the embedded diffusion model on ONNX Runtime or torch,
or an open-weight family checkpoint (engine.families) when the folder holds one.

Nothing here imports torch unless the torch runtime is chosen.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Literal

from engine.checkpoint import TOKENIZER_FILE, load_config
from engine.completer import Completer
from engine.config import ModelConfig
from engine.errors import ModelLoadError
from engine.tokenizer import load_tokenizer as read_tokenizer_file

RuntimeName = Literal["auto", "onnx", "onnx-int8", "torch"]
RUNTIMES: tuple[str, ...] = ("auto", "onnx", "onnx-int8", "torch")
MODEL_ENV = "DIFFILL_MODEL"


def default_model_path() -> Path:
    """$DIFFILL_MODEL; else the repository's models/ in a checkout; else the copy of it that
    the wheel installs as the package data engine/default_model."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    checkout = Path(__file__).resolve().parent.parent / "models"
    if checkout.is_dir():
        return checkout
    return Path(str(importlib.resources.files("engine") / "default_model"))


def open_completer(
    path: Path | None = None,
    runtime: RuntimeName = "auto",
    device: str | None = None,
    threads: int = 2,
    max_context_tokens: int | None = None,
    memory_budget_mb: int = 0,
) -> Completer:
    """The Completer for a model folder (default: `default_model_path()`); the context is
    cut to max_context_tokens (default: all the model's positions), and a request that would
    need more than memory_budget_mb is refused (0: half the memory free at load time)."""
    folder = Path(path) if path else default_model_path()
    check_model_folder(folder)
    family = _family_completer(folder, device)
    if family is not None:
        return family
    from engine.embedded import EmbeddedCompleter

    config = load_config(folder)
    tokenizer = load_tokenizer(folder, config)
    model_runtime = open_runtime(folder, runtime, device, threads)
    budget = memory_budget_mb * 1_000_000 or None
    return EmbeddedCompleter(model_runtime, tokenizer, config, folder, max_context_tokens, budget)


PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")


def check_model_folder(folder: Path) -> None:
    """A model path must name a folder with a config.json and safetensors weights. Nothing in
    it is ever executed: weights are read with safetensors (never unpickled), settings and
    tokenizers are JSON, serving graphs are ONNX, and Python files are never imported."""
    if not folder.exists():
        raise ModelLoadError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelLoadError(f"model path {folder} is a file; it must name a model folder")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} has no config.json, so it is not a model folder")
    if not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for pattern in PICKLED for p in folder.glob(pattern))
        found = f" (found {', '.join(pickled[:3])}: pickle, which diffill never loads)"
        raise ModelLoadError(
            f"{folder} has no .safetensors weights{found if pickled else ''}; "
            "diffill reads safetensors only"
        )


def _family_completer(folder: Path, device: str | None) -> Completer | None:
    """Hand open-weight checkpoints (Dream, LLaDA, ...) to engine.families."""
    from engine import families

    return families.open_completer(folder, device) if families.is_family_folder(folder) else None


def open_runtime(folder: Path, runtime: RuntimeName, device: str | None, threads: int):
    """onnx when asked or when the graphs exist (int8 steps where they help); torch when asked
    or as the fallback."""
    from engine.runtime_onnx import graphs_exist, int8_helps

    if runtime not in RUNTIMES:
        raise ModelLoadError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime == "auto" and graphs_exist(folder):
        runtime = "onnx-int8" if int8_helps(folder, device) else "onnx"
    if runtime in ("onnx", "onnx-int8"):
        from engine.runtime_onnx import OnnxRuntime

        return OnnxRuntime(folder, device, threads, int8=runtime == "onnx-int8")
    try:
        import torch  # noqa: F401  (the fallback runtime needs it; serving with graphs does not)
    except ImportError:
        why = "runtime torch asked for" if runtime == "torch" else f"no ONNX graphs in {folder}"
        raise ModelLoadError(
            f"{why} and torch is not installed; run `diffill export --model {folder}` "
            "where torch is, then use the onnx runtime"
        ) from None
    from engine.runtime_torch import TorchRuntime

    return TorchRuntime.from_folder(folder, device, threads)


def load_tokenizer(folder: Path, config: ModelConfig):
    """tokenizer.json, checked to carry the special tokens at 0..4 and the model's vocabulary."""
    path = folder / TOKENIZER_FILE
    tokenizer = read_tokenizer_file(path)
    if tokenizer.get_vocab_size() != config.vocab_size:
        raise ModelLoadError(
            f"tokenizer {path} has {tokenizer.get_vocab_size()} tokens, "
            f"config.json says vocab_size {config.vocab_size}"
        )
    return tokenizer
