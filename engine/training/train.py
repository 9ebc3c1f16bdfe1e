"""`diffill train`: the masked-diffusion FIM objective, nanoGPT style (settings, helpers, loop).

Each step runs the model on a clean sequence and K noised copies side by side
(engine/model.py; K is `canvases_per_context`):
- diffusion loss: per block of each copy, t ~ U(t_min, 1); each token is masked with
  probability t and that copy predicts it, cross-entropy weighted by 1/t, averaged over the
  copies. Every block of the sequence (suffix and prefix included) is a target, so no token
  is wasted, and the copies share one clean pass;
- next-token loss: the clean copy at position i predicts token i+1 (weight `ar_weight`).
<eom> padding past the first <eom> is down-weighted (`eom_pad_weight`); filler after a short
file counts for nothing.

A run may be a one-off (cosine schedule over a budget) or the long-lived one that every
working session resumes (`--continual`, or detached with `--background`, background.py):
warm-up then a constant learning rate, an EMA of the weights for shipping, checkpoints every
few minutes and on SIGTERM/SIGINT (checkpoint.py), and, when its folder is gone,
a fresh start from the shipped model's weights rather than from random ones.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.config import (
    TRAIN_PRESETS,
    ModelConfig,
    TrainConfig,
    model_preset,
    parse_model_overrides,
    train_preset,
)
from engine.errors import InputError, ModelLoadError
from engine.model import DiffusionFIM
from engine.tokens import MASK_ID
from engine.training.checkpoint import (
    LOG_FILE,
    has_checkpoint,
    lineage_tokens,
    load_checkpoint,
    save_checkpoint,
    save_model_folder,
)
from engine.training.fim import IGNORE, PAD


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
    text_parts: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted diffusion loss (mean over the K noised copies) plus ar_weight times the
    next-token loss of the one clean copy. With `text_parts`, the parts also come weighted
    as text alone (`<eom>` padding weighted 0), from the same forward pass: held-out losses
    that compare across runs trained with different `ar_weight` or `eom_pad_weight`."""
    copies = settings.canvases_per_context
    weights = role_weights(roles, settings)  # (N, S)
    targets = ids.repeat(1, copies)  # (N, KS): the copies end to end, each noised on its own
    canvas_size = model_config(model).canvas_size
    noisy, masked, t = add_noise(targets, canvas_size, settings.t_min, generator)
    scored_noisy = masked & (weights.repeat(1, copies) > 0)  # (N, KS)
    ce_noisy, ce_next = position_losses(
        model, ids, noisy, targets, scored_noisy, weights[:, 1:] > 0, settings.sparse_head
    )
    diffusion, next_token = weighted_parts(ce_noisy, ce_next, masked, t, weights, copies)
    parts = {"diffusion": diffusion.detach(), "next_token": next_token.detach()}
    if text_parts:
        text = role_weights(roles, dataclasses.replace(settings, eom_pad_weight=0.0))
        text_diffusion, text_next = weighted_parts(ce_noisy, ce_next, masked, t, text, copies)
        parts |= {"diffusion_text": text_diffusion.detach(), "next_token_text": text_next.detach()}
    return diffusion + settings.ar_weight * next_token, parts


def position_losses(
    model: torch.nn.Module,
    ids: torch.Tensor,
    noisy: torch.Tensor,
    targets: torch.Tensor,
    scored_noisy: torch.Tensor,
    scored_next: torch.Tensor,
    sparse_head: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of each noised copy's tokens (N, KS) and of each next token (N, S-1),
    0 where not scored.

    On CPU the vocabulary head and its softmax run only where a loss is taken: about half
    the noised positions carry no loss, and the head is a third of the step's FLOPs. On CUDA
    the dense head keeps the compiled shapes static."""
    s = ids.shape[1]
    if not (sparse_head and ids.device.type == "cpu"):
        logits = model(ids, noisy).float()  # (N, (1+K)S, V)
        return token_ce(logits[:, s:], targets), token_ce(logits[:, : s - 1], ids[:, 1:])
    hidden = model(ids, noisy, head=False)  # (N, (1+K)S, E)
    ce_noisy = hidden.new_zeros(scored_noisy.shape, dtype=torch.float32)
    ce_noisy[scored_noisy] = F.cross_entropy(
        model_head(model, hidden[:, s:][scored_noisy]).float(),
        targets[scored_noisy],
        reduction="none",
    )
    ce_next = hidden.new_zeros(scored_next.shape, dtype=torch.float32)
    ce_next[scored_next] = F.cross_entropy(
        model_head(model, hidden[:, : s - 1][scored_next]).float(),
        ids[:, 1:][scored_next],
        reduction="none",
    )
    return ce_noisy, ce_next


def weighted_parts(
    ce_noisy: torch.Tensor,
    ce_next: torch.Tensor,
    masked: torch.Tensor,
    t: torch.Tensor,
    weights: torch.Tensor,
    copies: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The diffusion loss (masked tokens weighted 1/t; the denominator spans all K copies, so
    a mean over them) and the next-token loss, under one set of position weights (N, S)."""
    copy_weights = weights.repeat(1, copies)  # (N, KS)
    diffusion = (ce_noisy * masked * copy_weights / t).sum() / copy_weights.sum()
    next_weights = weights[:, 1:]  # (N, S-1)
    return diffusion, (ce_next * next_weights).sum() / next_weights.sum()


def model_head(model: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The tied vocabulary head of a (possibly compiled) model on hidden states (..., E)."""
    return getattr(model, "_orig_mod", model).logits(hidden)


def model_config(model: torch.nn.Module) -> ModelConfig:
    return getattr(model, "_orig_mod", model).config


def learning_rate(step: int, progress: float, settings: TrainConfig) -> float:
    """Linear warm-up, then either a cosine to min_lr_ratio over the run's progress (steps or
    time) or, for a run resumed without end, a constant rate that no resumed leg restarts."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    if settings.schedule == "constant":
        return settings.lr
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
) -> dict[str, float] | None:
    """Mean held-out losses over a few batches with a fixed noise seed, for comparable logs:
    `loss` as trained, and its two parts on text alone (`<eom>` padding weighted 0), which
    compare across runs trained with different `ar_weight` or `eom_pad_weight`."""
    if loader is None:
        return None
    generator = torch.Generator(device=device).manual_seed(1234)
    sums = {"loss": 0.0, "diffusion_text": 0.0, "next_token_text": 0.0}
    batches = 0
    model.eval()
    for _, (ids, roles, _) in zip(range(settings.eval_batches), loader, strict=False):
        ids, roles = ids.to(device), roles.to(device)
        with autocast(device):
            loss, parts = compute_loss(model, ids, roles, settings, generator, text_parts=True)
        sums["loss"] += loss.item()
        sums["diffusion_text"] += parts["diffusion_text"].item()
        sums["next_token_text"] += parts["next_token_text"].item()
        batches += 1
    model.train()
    return {name: total / max(1, batches) for name, total in sums.items()}


def autocast(device: str):
    """bf16 autocast on CUDA; full precision on CPU, where bf16 matmuls are slower."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda")


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


def init_weights(model: DiffusionFIM, folder: Path) -> None:
    """Start from a model folder's weights (the shipped model, or another run's)."""
    from engine.checkpoint import load_weights

    weights = {k: torch.from_numpy(v) for k, v in load_weights(folder).items()}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"weights in {folder} do not fit this model: {detail}") from None


def new_ema(model: DiffusionFIM, settings: TrainConfig) -> DiffusionFIM | None:
    """A frozen copy of the model whose weights follow the EMA; None when the run keeps none."""
    if not settings.ema_decay:
        return None
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: DiffusionFIM | None, model: DiffusionFIM, decay: float) -> None:
    if ema is not None:
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)


def model_shape(
    settings: TrainConfig,
    tokenizer_path: Path,
    source: Path | None,
    model_overrides: dict | None,
) -> ModelConfig:
    """The shape of the checkpoint or weights a run continues from (`source`), else the
    preset's with `model_overrides`; the vocabulary always matches the tokenizer."""
    from engine.checkpoint import load_config
    from engine.tokenizer import load_tokenizer
    from engine.training.checkpoint import checkpoint_dir

    vocab_size = load_tokenizer(tokenizer_path).get_vocab_size()
    if "vocab_size" in (model_overrides or {}):
        raise InputError("vocab_size comes from the tokenizer: train one with that --vocab-size")
    if source is not None:
        if model_overrides:
            raise InputError("--model-set shapes a fresh run; this one continues existing weights")
        folder = checkpoint_dir(source) if has_checkpoint(source) else source
        config = load_config(folder)
        if config.vocab_size != vocab_size:
            raise InputError(
                f"{folder} has a {config.vocab_size}-token vocabulary but the tokenizer "
                f"{tokenizer_path} has {vocab_size}"
            )
        return config
    try:
        return model_preset(settings.model_preset, **(model_overrides or {}), vocab_size=vocab_size)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def setup(
    settings: TrainConfig,
    tokenizer_path: Path,
    run_dir: Path,
    resume: bool,
    model_overrides: dict | None = None,
    init_from: Path | None = None,
):
    """The model, optimizer, EMA copy and counters: continued from run_dir, or fresh from
    `init_from`'s weights, or fresh from random ones in the preset's shape."""
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    if resume and not has_checkpoint(run_dir):
        raise ModelLoadError(f"nothing to resume in {run_dir}: no checkpoint/train_state.json")
    config = model_shape(
        settings, tokenizer_path, run_dir if resume else init_from, model_overrides
    )
    check_layout(settings, config)
    model = DiffusionFIM(config).to(device)
    optimizer = make_optimizer(model, settings, device)
    state: dict = {"step": 0, "tokens": 0, "elapsed_s": 0.0, "data": [0, 0]}
    ema_weights, rng = None, None
    if resume:
        state, ema_weights, rng = load_checkpoint(run_dir, model, optimizer)
    elif init_from is not None:
        init_weights(model, init_from)
        state["tokens"] = state["start_tokens"] = lineage_tokens(init_from)
        state["init_from"] = str(init_from)
    ema = new_ema(model, settings)
    if ema is not None and ema_weights is not None:
        ema.load_state_dict({k: v.to(device) for k, v in ema_weights.items()}, strict=True)
    state["rng"] = rng
    run_dir.mkdir(parents=True, exist_ok=True)
    return model, optimizer, ema, state


def out_of_budget(state: dict, settings: TrainConfig) -> bool:
    over_time = settings.max_minutes > 0 and state["elapsed_s"] >= 60 * settings.max_minutes
    trained = state["tokens"] - state.get("start_tokens", 0)
    over_tokens = settings.max_tokens > 0 and trained >= settings.max_tokens
    return over_time or over_tokens or state["step"] >= settings.max_steps


def throughput(window: dict) -> dict[str, float]:
    """Tokens/s since the last log and the share of that time spent waiting for data."""
    seconds = time.perf_counter() - window["start"]
    return {"tokens_per_s": window["tokens"] / seconds, "data_fraction": window["data_s"] / seconds}


def fresh_window() -> dict:
    return {"tokens": 0, "data_s": 0.0, "start": time.perf_counter()}


class StopRequest:
    """SIGTERM and SIGINT set a flag the loop reads after each step: the run checkpoints and
    ends instead of dying mid-write."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __enter__(self) -> StopRequest:
        self.previous = {}
        if threading.current_thread() is threading.main_thread():  # signals only reach it
            self.previous = {
                s: signal.signal(s, self._set) for s in (signal.SIGTERM, signal.SIGINT)
            }
        return self

    def __exit__(self, *_exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _set(self, number: int, _frame: object) -> None:
        self.signal = number


def checkpoint(model, optimizer, ema, generator, loaders, settings, state, paths) -> None:
    """Held-out loss (of the raw weights and of the EMA), a log line, and an atomic save."""
    device = next(model.parameters()).device.type
    record = {"step": state["step"], "tokens": state["tokens"], "time": round(time.time(), 3)}
    for suffix, weights in (("", model), ("_ema", ema)):
        losses = None if weights is None else estimate_loss(weights, loaders[1], settings, device)
        if losses is None:
            continue
        state[f"heldout_loss{suffix}"] = losses["loss"]
        record.update({f"heldout_{part}{suffix}": value for part, value in losses.items()})
    log(paths["run_dir"], record)
    saved = {k: v for k, v in state.items() if k != "rng"}
    ema_weights = ema.state_dict() if ema is not None else None
    save_checkpoint(
        paths["run_dir"], model, optimizer, ema_weights, generator, saved, paths["tokenizer"]
    )


def loop(model, optimizer, ema, loaders, settings: TrainConfig, state: dict, paths: dict) -> str:
    """Train until max_steps, max_minutes or a stop signal; log, evaluate held-out loss and
    save as it goes (every save_every steps and every save_minutes). Returns why it ended."""
    device = next(model.parameters()).device
    compiled = torch.compile(model) if settings.compile else model
    generator = torch.Generator(device=device).manual_seed(settings.seed + state["step"])
    if state.get("rng") is not None:
        generator.set_state(state["rng"])
    stream, clock, window = iter(loaders[0]), time.perf_counter(), fresh_window()
    last_save = time.monotonic()
    with StopRequest() as stop:
        while not out_of_budget(state, settings) and stop.signal is None:
            start = time.perf_counter()
            ids, roles, position = next(stream)
            ids, roles = ids.to(device, non_blocking=True), roles.to(device, non_blocking=True)
            window["data_s"] += time.perf_counter() - start
            lr = learning_rate(state["step"], progress(state, settings), settings)
            record = train_step(compiled, optimizer, ids, roles, settings, generator, lr)
            update_ema(ema, model, settings.ema_decay)
            now = time.perf_counter()
            state["elapsed_s"] += now - clock
            state["step"], state["tokens"], clock = (
                state["step"] + 1,
                state["tokens"] + ids.numel(),
                now,
            )
            state["data"] = list(position)
            window["tokens"] += ids.numel()
            if state["step"] % settings.log_every == 0:
                counters = {k: state[k] for k in ("step", "tokens", "elapsed_s")}
                timing = {"time": round(time.time(), 3), **throughput(window)}
                log(paths["run_dir"], {**counters, **record, **timing})
                window = fresh_window()
            due = time.monotonic() - last_save >= 60 * settings.save_minutes > 0
            if state["step"] % settings.save_every == 0 or due or out_of_budget(state, settings):
                checkpoint(model, optimizer, ema, generator, loaders, settings, state, paths)
                last_save, clock = time.monotonic(), time.perf_counter()  # not training time
        if stop.signal is not None:
            checkpoint(model, optimizer, ema, generator, loaders, settings, state, paths)
            return signal.Signals(stop.signal).name
    return "budget"


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
    from engine.training.background import add_background_arguments

    parser.add_argument("--preset", default=None, choices=sorted(TRAIN_PRESETS))
    parser.add_argument("--corpus", type=Path, help="corpus manifest (default data/corpus.json)")
    parser.add_argument("--tokenizer", type=Path, help="default: the shipped model's")
    parser.add_argument("--run-dir", type=Path, help="checkpoints and log (default runs/PRESET)")
    parser.add_argument("--out", type=Path, help="also write the final model folder here")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument(
        "--init-from",
        type=Path,
        metavar="FOLDER",
        help="start from this model folder's weights (fresh optimizer) instead of random ones",
    )
    parser.add_argument(
        "--model-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one model shape setting of the preset, e.g. n_layers=4 (repeatable)",
    )
    add_background_arguments(parser)
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {"int": int, "float": float, "str": str}[field.type]
            parser.add_argument(flag, type=kind, default=None, help="overrides the preset")


def make_loaders(
    manifest: dict,
    tokenizer: Path,
    settings: TrainConfig,
    canvas_size: int,
    start: tuple[int, int] = (0, 0),
):
    """The training stream from `start`, and a held-out one (in-process, fixed seed) when
    that split exists."""
    from engine.training.data import batches, split_paths

    train_loader = batches(
        manifest, "train", tokenizer, settings, canvas_size, settings.seed, start
    )
    if not split_paths(manifest, "heldout"):
        return train_loader, None
    quiet = dataclasses.replace(settings, workers=0)
    return train_loader, batches(manifest, "heldout", tokenizer, quiet, canvas_size, 0)


def default_tokenizer(resume: bool, run_dir: Path, init_from: Path | None) -> Path:
    """The tokenizer that belongs with the weights: the checkpoint's, the starting folder's,
    else the shipped model's."""
    from engine.loading import default_model_path
    from engine.training.checkpoint import checkpoint_dir

    if resume and has_checkpoint(run_dir):
        return checkpoint_dir(run_dir) / "tokenizer.json"
    return (init_from or default_model_path()) / "tokenizer.json"


def train(args: argparse.Namespace) -> int:
    """One run in the foreground: fresh, resumed (--resume) or started from weights."""
    from engine.training.corpus import load_manifest

    args.preset = args.preset or "default"
    settings = settings_from_args(args)
    try:
        overrides = parse_model_overrides(args.model_set)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    run_dir = args.run_dir or Path("runs") / args.preset
    tokenizer = args.tokenizer or default_tokenizer(args.resume, run_dir, args.init_from)
    model, optimizer, ema, state = setup(
        settings, tokenizer, run_dir, args.resume, overrides, args.init_from
    )
    manifest = load_manifest(args.corpus or Path("data/corpus.json"))
    loaders = make_loaders(
        manifest, tokenizer, settings, model.config.canvas_size, tuple(state.get("data", (0, 0)))
    )
    counters = {"step": state["step"], "tokens": state["tokens"]}
    settings_record = {"settings": dataclasses.asdict(settings)}
    log(run_dir, {"parameters": model.num_parameters(), **counters, **settings_record})
    paths = {"run_dir": run_dir, "tokenizer": tokenizer}
    ended = loop(model, optimizer, ema, loaders, settings, state, paths)
    log(run_dir, {"step": state["step"], "tokens": state["tokens"], "ended": ended})
    if args.out:
        save_model_folder(args.out, model, tokenizer)
    return 0


def continual(args: argparse.Namespace, run_dir: Path) -> int:
    """The long-lived run in this process: resumed when its checkpoint exists, else started
    from the shipped model's weights (never from random ones) with a fresh optimizer."""
    from engine.loading import default_model_path
    from engine.training.background import PID_FILE, read_pid

    args.preset = args.preset or "continual"
    args.run_dir = run_dir
    args.corpus = args.corpus or ensure_corpus(run_dir)
    if has_checkpoint(run_dir):
        args.resume, args.init_from = True, None
    else:
        args.init_from = args.init_from or default_model_path()
    try:
        return train(args)
    finally:
        pidfile = run_dir / PID_FILE
        if read_pid(pidfile) == os.getpid():
            pidfile.unlink(missing_ok=True)


def ensure_corpus(run_dir: Path) -> Path:
    """The run's own corpus manifest, collected once like `diffill corpus` (same held-out split)."""
    from engine.training import corpus
    from engine.training.background import CORPUS_FILE

    path = run_dir / CORPUS_FILE
    if not path.exists():
        languages = ("python",)
        manifest = corpus.collect(corpus.default_roots(languages), languages, (), 0.02)
        run_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def run(args: argparse.Namespace) -> int:
    from engine.training import background

    if args.continual:
        return continual(args, background.run_dir_of(args))
    return background.dispatch(args) if background.requested(args) else train(args)
