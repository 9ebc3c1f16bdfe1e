"""`diffill train`: the masked-diffusion FIM objective, nanoGPT style (settings, helpers, loop).

Each step runs the model on a clean sequence and K noised copies side by side
(engine/model.py; K is `canvases_per_context`):
- diffusion loss: per block of each copy, t ~ U(t_min, 1); each token is masked with
  probability t and that copy predicts it, cross-entropy weighted by 1/t, averaged over the
  copies. Every block of the sequence (suffix and prefix included) is a target, so no token
  is wasted, and the copies share one clean pass;
- next-token loss: the clean copy at position i predicts token i+1 (weight `ar_weight`).
<eom> padding past the first <eom> is down-weighted (`eom_pad_weight`); filler after a short
file counts for nothing. A run folder holds the latest checkpoint as a model folder plus the
optimizer state (safetensors) and a JSON-lines log, so `--resume` continues where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.checkpoint import TOKENIZER_FILE, load_weights, save_weights
from engine.config import (
    TRAIN_PRESETS,
    ModelConfig,
    TrainConfig,
    model_preset,
    parse_model_overrides,
    train_preset,
)
from engine.errors import InputError, ModelLoadError
from engine.fim import IGNORE, PAD
from engine.model import DiffusionFIM
from engine.tokens import MASK_ID

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "train_state.json"
LOG_FILE = "log.jsonl"


def role_weights(roles: torch.Tensor, settings: TrainConfig) -> torch.Tensor:
    """Loss weight of each position: 0 for filler, eom_pad_weight for <eom> padding, else 1."""
    weights = torch.ones(roles.shape, dtype=torch.float32, device=roles.device)
    weights[roles == PAD] = settings.eom_pad_weight
    weights[roles == IGNORE] = 0.0
    return weights


def add_noise(
    ids: torch.Tensor, canvas_size: int, t_min: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask each token with its block's rate t ~ U(t_min, 1): noisy ids, mask, t per token."""
    n, s = ids.shape
    t = torch.rand(n, s // canvas_size, generator=generator, device=ids.device)
    t = (t_min + (1 - t_min) * t).repeat_interleave(canvas_size, dim=1)  # (N, S)
    masked = torch.rand(n, s, generator=generator, device=ids.device) < t
    return torch.where(masked, MASK_ID, ids), masked, t


def token_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per token (N, T) of logits (N, T, V) on targets (N, T)."""
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")


def compute_loss(
    model: torch.nn.Module,
    ids: torch.Tensor,
    roles: torch.Tensor,
    settings: TrainConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted diffusion loss (mean over the K noised copies) plus ar_weight times the
    next-token loss of the one clean copy."""
    s, copies = ids.shape[1], settings.canvases_per_context
    weights = role_weights(roles, settings)  # (N, S)
    targets = ids.repeat(1, copies)  # (N, KS): the copies end to end, each noised on its own
    canvas_size = model_config(model).canvas_size
    noisy, masked, t = add_noise(targets, canvas_size, settings.t_min, generator)
    logits = model(ids, noisy).float()  # (N, (1+K)S, V)
    copy_weights = weights.repeat(1, copies)  # (N, KS); its sum spans all K copies: a mean
    ce_noisy = token_ce(logits[:, s:], targets)  # (N, KS)
    diffusion = (ce_noisy * masked * copy_weights / t).sum() / copy_weights.sum()
    ce_next = token_ce(logits[:, : s - 1], ids[:, 1:])  # (N, S-1)
    next_token = (ce_next * weights[:, 1:]).sum() / weights[:, 1:].sum()
    loss = diffusion + settings.ar_weight * next_token
    return loss, {"diffusion": diffusion.detach(), "next_token": next_token.detach()}


def model_config(model: torch.nn.Module) -> ModelConfig:
    return getattr(model, "_orig_mod", model).config


def learning_rate(step: int, progress: float, settings: TrainConfig) -> float:
    """Linear warmup, then cosine to min_lr_ratio over the run's progress (steps or time)."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    floor = settings.lr * settings.min_lr_ratio
    return floor + 0.5 * (settings.lr - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: DiffusionFIM, settings: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not norms)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.95), fused=device == "cuda")


@torch.no_grad()
def estimate_loss(
    model: torch.nn.Module, loader, settings: TrainConfig, device: str
) -> float | None:
    """Mean loss over a few held-out batches with a fixed noise seed, for comparable logs."""
    if loader is None:
        return None
    generator = torch.Generator(device=device).manual_seed(1234)
    model.eval()
    losses = []
    for _, (ids, roles) in zip(range(settings.eval_batches), loader, strict=False):
        with autocast(device):
            loss, _ = compute_loss(model, ids.to(device), roles.to(device), settings, generator)
        losses.append(loss.item())
    model.train()
    return sum(losses) / max(1, len(losses))


def autocast(device: str):
    """bf16 autocast on CUDA; full precision on CPU, where bf16 matmuls are slower."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda")


def save_model_folder(folder: Path, model: DiffusionFIM, tokenizer_path: Path) -> None:
    """A loadable model folder: config.json, weight shards with index, tokenizer.json."""
    folder.mkdir(parents=True, exist_ok=True)
    model.config.to_json(folder / "config.json")
    weights = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    save_weights(weights, folder)
    if Path(tokenizer_path).resolve() != (folder / TOKENIZER_FILE).resolve():
        shutil.copyfile(tokenizer_path, folder / TOKENIZER_FILE)


def _optimizer_names(optimizer: torch.optim.Optimizer, model: DiffusionFIM) -> dict[int, str]:
    """Optimizer state-dict index -> parameter name, in the optimizer's own order."""
    names = {id(p): name for name, p in model.named_parameters()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return {index: names[id(p)] for index, p in enumerate(params)}


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer, model: DiffusionFIM) -> None:
    """AdamW moments and step counts as safetensors (never pickle)."""
    from safetensors.torch import save_file

    names = _optimizer_names(optimizer, model)
    tensors = {}
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            tensors[f"{names[index]}/{key}"] = (
                value.detach().float().cpu().reshape(value.shape or 1)
            )
    save_file(tensors, str(path))


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, model: DiffusionFIM) -> None:
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


def save_checkpoint(run_dir: Path, model: DiffusionFIM, optimizer, state: dict, tokenizer: Path):
    save_model_folder(run_dir, model, tokenizer)
    save_optimizer(run_dir / OPTIMIZER_FILE, optimizer, model)
    (run_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def load_checkpoint(run_dir: Path, model: DiffusionFIM, optimizer) -> dict:
    """Weights, optimizer and counters of an earlier run, checked to match this model."""
    if not (run_dir / STATE_FILE).exists():
        raise ModelLoadError(f"nothing to resume in {run_dir}: no {STATE_FILE}")
    weights = {k: torch.from_numpy(v) for k, v in load_weights(run_dir).items()}
    try:
        model.load_state_dict(weights, strict=True)
        load_optimizer(run_dir / OPTIMIZER_FILE, optimizer, model)
    except (RuntimeError, ValueError, KeyError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"checkpoint in {run_dir} does not match this run: {detail}") from None
    return json.loads((run_dir / STATE_FILE).read_text())


def progress(state: dict, settings: TrainConfig) -> float:
    """How far the run is, 0..1, by steps or by the time budget, whichever is further."""
    by_steps = state["step"] / settings.max_steps
    by_time = state["elapsed_s"] / (60 * settings.max_minutes) if settings.max_minutes else 0.0
    return max(by_steps, by_time)


def train_step(
    compiled: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ids: torch.Tensor,
    roles: torch.Tensor,
    settings: TrainConfig,
    generator: torch.Generator,
    lr: float,
) -> dict:
    """One optimizer step; the returned losses stay tensors so the GPU is not synced."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(ids.device.type):
        loss, parts = compute_loss(compiled, ids, roles, settings, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(compiled.parameters(), settings.grad_clip)
    optimizer.step()
    return {"loss": loss.detach(), **parts, "lr": lr}


def log(run_dir: Path, record: dict) -> None:
    """One JSON line to stdout and to the run's log file."""
    record = {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in record.items()}
    line = json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in record.items()})
    print(line, flush=True)
    with (run_dir / LOG_FILE).open("a") as handle:
        handle.write(line + "\n")


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available here")
    return name


def check_layout(settings: TrainConfig, config: ModelConfig) -> None:
    if settings.seq_len % config.canvas_size or settings.seq_len > config.max_positions:
        raise InputError(
            f"seq_len {settings.seq_len} must be a multiple of canvas_size "
            f"{config.canvas_size} and at most {config.max_positions}"
        )


def setup(
    settings: TrainConfig,
    tokenizer_path: Path,
    run_dir: Path,
    resume: bool,
    model_overrides: dict | None = None,
):
    """The model (the preset's shape with `model_overrides`), optimizer and counters: fresh,
    or continued from run_dir."""
    from engine.tokenizer import load_tokenizer

    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    vocab_size = load_tokenizer(tokenizer_path).get_vocab_size()
    if "vocab_size" in (model_overrides or {}):
        raise InputError("vocab_size comes from the tokenizer: train one with that --vocab-size")
    try:
        config = model_preset(
            settings.model_preset, **(model_overrides or {}), vocab_size=vocab_size
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    check_layout(settings, config)
    model = DiffusionFIM(config).to(device)
    optimizer = make_optimizer(model, settings, device)
    state = {"step": 0, "tokens": 0, "elapsed_s": 0.0}
    if resume:
        state = load_checkpoint(run_dir, model, optimizer)
    run_dir.mkdir(parents=True, exist_ok=True)
    return model, optimizer, state


def out_of_budget(state: dict, settings: TrainConfig) -> bool:
    over_time = settings.max_minutes > 0 and state["elapsed_s"] >= 60 * settings.max_minutes
    return over_time or state["step"] >= settings.max_steps


def throughput(window: dict) -> dict[str, float]:
    """Tokens/s since the last log and the share of that time spent waiting for data."""
    seconds = time.perf_counter() - window["start"]
    return {"tokens_per_s": window["tokens"] / seconds, "data_fraction": window["data_s"] / seconds}


def fresh_window() -> dict:
    return {"tokens": 0, "data_s": 0.0, "start": time.perf_counter()}


def loop(model, optimizer, loaders, settings: TrainConfig, state: dict, paths: dict) -> None:
    """Train until max_steps or max_minutes; log, evaluate held-out loss and save as it goes."""
    device = next(model.parameters()).device
    compiled = torch.compile(model) if settings.compile and device.type == "cuda" else model
    generator = torch.Generator(device=device).manual_seed(settings.seed + state["step"])
    stream, clock, window = iter(loaders[0]), time.perf_counter(), fresh_window()
    while not out_of_budget(state, settings):
        start = time.perf_counter()
        ids, roles = (x.to(device, non_blocking=True) for x in next(stream))
        window["data_s"] += time.perf_counter() - start
        lr = learning_rate(state["step"], progress(state, settings), settings)
        record = train_step(compiled, optimizer, ids, roles, settings, generator, lr)
        now = time.perf_counter()
        state["elapsed_s"] += now - clock
        state["step"], state["tokens"], clock = (
            state["step"] + 1,
            state["tokens"] + ids.numel(),
            now,
        )
        window["tokens"] += ids.numel()
        if state["step"] % settings.log_every == 0:
            counters = {k: v for k, v in state.items() if k != "heldout_loss"}
            log(paths["run_dir"], {**counters, **record, **throughput(window)})
            window = fresh_window()
        if state["step"] % settings.save_every == 0 or out_of_budget(state, settings):
            state["heldout_loss"] = estimate_loss(compiled, loaders[1], settings, device.type)
            log(paths["run_dir"], {"step": state["step"], "heldout_loss": state["heldout_loss"]})
            save_checkpoint(paths["run_dir"], model, optimizer, state, paths["tokenizer"])
            clock = time.perf_counter()  # evaluation and saving are not training time


def settings_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    try:
        return train_preset(args.preset, **overrides)
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default", choices=sorted(TRAIN_PRESETS))
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus.json"))
    parser.add_argument("--tokenizer", type=Path, default=Path("models/tokenizer.json"))
    parser.add_argument("--run-dir", type=Path, help="checkpoints and log (default runs/PRESET)")
    parser.add_argument("--out", type=Path, help="also write the final model folder here")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument(
        "--model-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one model shape setting of the preset, e.g. n_layers=4 (repeatable)",
    )
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {"int": int, "float": float, "str": str}[field.type]
            parser.add_argument(flag, type=kind, default=None, help="overrides the preset")


def make_loaders(
    manifest: dict, tokenizer: Path, settings: TrainConfig, canvas_size: int, seed: int
):
    """The training stream, and a held-out one (in-process, fixed seed) when that split exists."""
    from engine.train_data import batches, split_paths

    train_loader = batches(manifest, "train", tokenizer, settings, canvas_size, seed)
    if not split_paths(manifest, "heldout"):
        return train_loader, None
    quiet = dataclasses.replace(settings, workers=0)
    return train_loader, batches(manifest, "heldout", tokenizer, quiet, canvas_size, 0)


def run(args: argparse.Namespace) -> int:
    from engine.corpus import load_manifest

    settings = settings_from_args(args)
    try:
        overrides = parse_model_overrides(args.model_set)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    run_dir = args.run_dir or Path("runs") / args.preset
    model, optimizer, state = setup(settings, args.tokenizer, run_dir, args.resume, overrides)
    seed = settings.seed + state["step"]  # a resumed run cuts fresh spans
    loaders = make_loaders(
        load_manifest(args.corpus), args.tokenizer, settings, model.config.canvas_size, seed
    )
    log(run_dir, {"parameters": model.num_parameters(), "settings": dataclasses.asdict(settings)})
    paths = {"run_dir": run_dir, "tokenizer": args.tokenizer}
    loop(model, optimizer, loaders, settings, state, paths)
    if args.out:
        save_model_folder(args.out, model, args.tokenizer)
    return 0
