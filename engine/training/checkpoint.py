"""A training run's checkpoint on disk, written so that no kill can leave it half-written.

A run folder holds `checkpoint/` (a loadable model folder plus the optimizer moments, the EMA
of the weights, the noise generator's state and `train_state.json` with the step, token count
and data position) and the run's `log.jsonl`. A save writes `checkpoint.tmp/` in full, then
swaps it in with two renames; a kill between them leaves `checkpoint.old/`, which loading
falls back to. Everything is safetensors or JSON, never pickle.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from engine.checkpoint import TOKENIZER_FILE, load_weights, save_weights
from engine.config import ModelConfig
from engine.errors import InputError, ModelLoadError

if TYPE_CHECKING:  # torch only where a checkpoint is written or read: --status stays light
    import numpy as np
    import torch

CHECKPOINT_DIR = "checkpoint"
OPTIMIZER_FILE = "optimizer.safetensors"
EMA_FILE = "ema.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "train_state.json"
LOG_FILE = "log.jsonl"
LINEAGE_FILE = "lineage.json"  # in a shipped model folder: the tokens its weights have seen


def checkpoint_dir(run_dir: Path) -> Path:
    """The newest complete checkpoint: `checkpoint/`, or `checkpoint.old/` after a torn swap."""
    current, old = run_dir / CHECKPOINT_DIR, run_dir / f"{CHECKPOINT_DIR}.old"
    if (current / STATE_FILE).exists() or not (old / STATE_FILE).exists():
        return current
    return old


def has_checkpoint(run_dir: Path) -> bool:
    return (checkpoint_dir(run_dir) / STATE_FILE).exists()


def save_model_folder(folder: Path, model: torch.nn.Module, tokenizer_path: Path) -> None:
    """A loadable model folder: config.json, weight shards with index, tokenizer.json."""
    weights = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    write_model_folder(folder, model.config, weights, tokenizer_path)


def write_model_folder(
    folder: Path, config: ModelConfig, weights: dict[str, np.ndarray], tokenizer_path: Path
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config.to_json(folder / "config.json")
    save_weights(weights, folder)
    if Path(tokenizer_path).resolve() != (folder / TOKENIZER_FILE).resolve():
        shutil.copyfile(tokenizer_path, folder / TOKENIZER_FILE)


def _optimizer_names(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> dict[int, str]:
    """Optimizer state-dict index -> parameter name, in the optimizer's own order."""
    names = {id(p): name for name, p in model.named_parameters()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return {index: names[id(p)] for index, p in enumerate(params)}


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
    """AdamW moments and step counts as safetensors."""
    from safetensors.torch import save_file

    names = _optimizer_names(optimizer, model)
    tensors = {}
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            tensors[f"{names[index]}/{key}"] = (
                value.detach().float().cpu().reshape(value.shape or 1)
            )
    save_file(tensors, str(path))


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for index, name in _optimizer_names(optimizer, model).items():
        keys = {k.split("/", 1)[1] for k in tensors if k.split("/", 1)[0] == name}
        state[index] = {k: tensors[f"{name}/{k}"] for k in keys}
        if "step" in state[index]:
            state[index]["step"] = state[index]["step"].reshape(())
    optimizer.load_state_dict(
        {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}
    )


def save_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: dict[str, torch.Tensor] | None,
    generator: torch.Generator,
    state: dict,
    tokenizer: Path,
) -> None:
    """Write the whole checkpoint beside the current one, then swap it in."""
    from safetensors.torch import save_file

    tmp, current = run_dir / f"{CHECKPOINT_DIR}.tmp", run_dir / CHECKPOINT_DIR
    old = run_dir / f"{CHECKPOINT_DIR}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_folder(tmp, model, tokenizer)
    save_optimizer(tmp / OPTIMIZER_FILE, optimizer, model)
    if ema is not None:
        save_file({k: v.detach().float().cpu() for k, v in ema.items()}, str(tmp / EMA_FILE))
    save_file({"noise": generator.get_state()}, str(tmp / RNG_FILE))
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    shutil.rmtree(old, ignore_errors=True)
    if current.exists():
        current.rename(old)
    tmp.rename(current)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict, dict[str, torch.Tensor] | None, torch.Tensor | None]:
    """Weights and optimizer of an earlier run (checked to match this model), and its state,
    EMA weights and noise generator state."""
    import torch
    from safetensors.torch import load_file

    folder = checkpoint_dir(run_dir)
    if not (folder / STATE_FILE).exists():
        raise ModelLoadError(f"nothing to resume in {run_dir}: no {CHECKPOINT_DIR}/{STATE_FILE}")
    weights = {k: torch.from_numpy(v) for k, v in load_weights(folder).items()}
    try:
        model.load_state_dict(weights, strict=True)
        load_optimizer(folder / OPTIMIZER_FILE, optimizer, model)
        ema = load_file(str(folder / EMA_FILE)) if (folder / EMA_FILE).exists() else None
        rng = load_file(str(folder / RNG_FILE))["noise"] if (folder / RNG_FILE).exists() else None
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"checkpoint in {folder} does not match this run: {detail}") from None
    return json.loads((folder / STATE_FILE).read_text()), ema, rng


def lineage_tokens(folder: Path) -> int:
    """Tokens the weights in a model folder have seen: its lineage.json, or a run
    checkpoint's train_state.json; 0 when neither says."""
    for name, key in ((LINEAGE_FILE, "tokens"), (STATE_FILE, "tokens")):
        path = folder / name
        if path.exists():
            try:
                return int(json.loads(path.read_text())[key])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ModelLoadError(f"{path} has no readable token count: {exc}") from None
    return 0


SNAPSHOT_WEIGHTS = ("best", "ema", "raw")


def chosen_weights(state: dict, has_ema: bool, weights: str) -> str:
    """`best` takes whichever of the EMA and the raw weights had the lower held-out loss at the
    checkpoint: a 0.999 EMA still carries over half of its starting weights 700 steps in, so
    early in a long-lived run the raw weights are the better ones."""
    if not has_ema or weights == "raw":
        return "raw"
    if weights == "ema":
        return "ema"
    raw_loss, ema_loss = state.get("heldout_loss"), state.get("heldout_loss_ema")
    if raw_loss is not None and ema_loss is not None and raw_loss < ema_loss:
        return "raw"
    return "ema"


def snapshot(run_dir: Path, out: Path, weights: str = "best") -> dict:
    """The checkpoint's weights that would ship (`weights`: best, ema or raw) as a model folder
    with its lineage; returns the lineage record."""
    from safetensors.numpy import load_file

    from engine.checkpoint import load_config

    folder = checkpoint_dir(run_dir)
    if not (folder / STATE_FILE).exists():
        raise ModelLoadError(f"no checkpoint in {run_dir} to snapshot")
    if weights not in SNAPSHOT_WEIGHTS:
        raise InputError(f"weights must be one of {', '.join(SNAPSHOT_WEIGHTS)}, not {weights!r}")
    state = json.loads((folder / STATE_FILE).read_text())
    ema = chosen_weights(state, (folder / EMA_FILE).exists(), weights) == "ema"
    tensors = load_file(str(folder / EMA_FILE)) if ema else load_weights(folder)
    write_model_folder(out, load_config(folder), tensors, folder / TOKENIZER_FILE)
    lineage = {
        "tokens": state["tokens"],
        "step": state["step"],
        "weights": "ema" if ema else "raw",
        "heldout_loss": state.get("heldout_loss_ema" if ema else "heldout_loss"),
    }
    (out / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2) + "\n")
    return lineage
