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
    return ModelConfig(**{**MODEL_PRESETS[name], **overrides})
