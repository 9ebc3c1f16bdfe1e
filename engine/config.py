"""Typed configuration for the engine: the model shape and its named presets.

Every size the model has lives here, once. Presets are override dicts over the
defaults so a preset says only what it changes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the block-causal diffusion FIM transformer."""

    vocab_size: int = 8192  # must equal the tokenizer's vocabulary, special tokens included
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 4
    ffn_hidden: int = 704  # SwiGLU width: about 8/3 * d_model, rounded to a multiple of 64
    canvas_size: int = 16  # C: masked tokens denoised together in one block
    max_positions: int = 4096  # length of the precomputed rotary table
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        positive = {k: v for k, v in dataclasses.asdict(self).items() if not isinstance(v, float)}
        bad = {k: v for k, v in positive.items() if v <= 0}
        if bad:
            raise ValueError(f"model config values must be positive, got {bad}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim ({self.head_dim}) must be even for rotary positions")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: Path) -> ModelConfig:
        try:
            values = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"model config not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"model config {path} is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise ValueError(f"model config {path} must hold a JSON object")
        return cls.from_dict(values)


MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 2, "ffn_hidden": 176, "canvas_size": 8},
    "default": {},
}


def model_preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset with `overrides` (for example the tokenizer's vocab_size) applied."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(MODEL_PRESETS)}")
    return ModelConfig.from_dict({**MODEL_PRESETS[name], **overrides})


def parse_model_overrides(items: list[str]) -> dict[str, int | float]:
    """`KEY=VALUE` strings (as `diffill train --model-set` takes them) -> typed overrides."""
    kinds = {f.name: int if f.type == "int" else float for f in dataclasses.fields(ModelConfig)}
    overrides: dict[str, int | float] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in kinds:
            raise ValueError(
                f"unknown model setting {key!r} in {item!r}; choose from {sorted(kinds)}"
            )
        try:
            overrides[key] = kinds[key](value)
        except ValueError:
            raise ValueError(
                f"model setting {item!r}: {value!r} is not a valid {kinds[key].__name__}"
            ) from None
    return overrides


SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one `diffill train` run; presets below say what each run kind changes."""

    model_preset: str = "default"
    seq_len: int = 256  # S: tokens per training sequence, a multiple of canvas_size
    batch_size: int = 8
    max_steps: int = 100_000
    max_minutes: float = 0.0  # wall-clock budget; 0 means steps only
    max_tokens: int = 0  # tokens this run may train (A/B budgets); 0 means no such limit
    lr: float = 2e-3
    schedule: str = "cosine"  # after warm-up: cosine over the budget, or constant (resumable)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50
    ema_decay: float = 0.0  # EMA of the weights kept beside them for shipping; 0 keeps none
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    t_min: float = 0.02  # masking rate t ~ U(t_min, 1); the 1/t weight stays bounded
    ar_weight: float = 0.5  # next-token loss on the clean copy, relative to the diffusion loss
    eom_pad_weight: float = 0.1  # <eom> padding past the first one is an easy, frequent target
    canvases_per_context: int = 1  # K: independently noised copies sharing one clean pass
    sparse_head: bool = True  # on CPU, the vocabulary head only where a loss is taken
    max_middle_tokens: int = 64
    examples_per_file: int = 4  # spans cut from one file before moving to the next
    log_every: int = 10
    save_every: int = 200
    save_minutes: float = 5.0  # also checkpoint this often; a SIGKILL loses at most this much
    eval_batches: int = 4  # held-out batches for the loss logged at each save
    workers: int = 0  # data-loader processes; 0 builds examples in the training process
    threads: int = 2  # CPU threads for torch
    device: str = "auto"  # auto picks cuda when available
    compile: bool = False  # torch.compile (on CPU too: `diffill bench train` measures it)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.seq_len <= 0 or self.batch_size <= 0 or self.max_steps <= 0:
            raise ValueError(
                f"seq_len, batch_size and max_steps must be positive, got "
                f"{self.seq_len}, {self.batch_size}, {self.max_steps}"
            )
        if not 0.0 < self.t_min < 1.0:
            raise ValueError(f"t_min must be in (0, 1), got {self.t_min}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.canvases_per_context < 1:
            raise ValueError(
                f"canvases_per_context must be at least 1, got {self.canvases_per_context}"
            )


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "model_preset": "tiny",
        "seq_len": 64,
        "batch_size": 4,
        "max_steps": 40,
        "lr": 3e-3,
        "warmup_steps": 5,
        "max_middle_tokens": 24,
        "log_every": 5,
        "save_every": 20,
        "eval_batches": 1,
        "threads": 1,  # small matrices: a second thread only waits, worse on a busy machine
    },
    "default": {},
    # The long-lived run every working session resumes at the lowest CPU priority: a constant
    # rate after warm-up (no cosine to restart), an EMA for shipping, no end of its own.
    "continual": {
        "schedule": "constant",
        # The shipped model ended its cosine near 2e-4..9e-4; resumed at a constant 2e-3 its
        # held-out loss rose from 9.27 to 9.52 in 85 steps (the run's log, 2026-12-02).
        "lr": 6e-4,
        # 843 against 666 tok/s on 2 cores (`diffill bench train`, BENCHMARKS.md)
        "compile": True,
        "ema_decay": 0.999,
        "max_steps": 10**12,
        "warmup_steps": 100,
        "save_every": 10**12,  # by time instead: every save_minutes
        "log_every": 20,
    },
    "gpu": {  # one H200 for about 8 minutes: several hundred million tokens
        "seq_len": 512,
        "batch_size": 128,  # 65k tokens a step: thousands of steps in the budget
        # Two noised copies per context: the clean pass (and its next-token loss) is shared,
        # so the second copy doubles the diffusion targets for about 1.7x the step's FLOPs
        # (13.7 vs 7.9 TFLOP by a count of matmuls: the MLPs and vocabulary head grow with
        # 1+K, dense-mask attention with ((1+K)S)^2). A third copy costs as much per target
        # again at S=512 (6.9 TFLOP per copy) with more memory, so it buys nothing.
        "canvases_per_context": 2,
        "max_minutes": 8.0,
        "lr": 3e-3,
        "warmup_steps": 200,
        "log_every": 25,
        "save_every": 500,
        "eval_batches": 8,
        "workers": 12,
        "threads": 4,
    },
}


def train_preset(name: str, **overrides: Any) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown train preset {name!r}; choose from {sorted(TRAIN_PRESETS)}")
    return TrainConfig(**{**TRAIN_PRESETS[name], **overrides})
