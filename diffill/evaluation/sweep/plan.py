"""Sweep plans for `diffill sweep`: named sets of model shapes, one axis varied at a time.

A point is a few ModelConfig overrides over its plan's base shape. The SwiGLU width follows
the model width (8/3 * d_model rounded to 64, as the default preset's 704 for 256) unless a
point sets it. `tiny` is for tests; `cpu` and `gpu` vary depth, width, canvas and vocabulary
around the default preset, `gpu` with the GPU training preset. A JSON file of the same form
(`--plan-file`) defines other plans without code changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import TRAIN_PRESETS, ModelConfig
from engine.errors import InputError

SHAPE_KEYS = ("n_layers", "d_model", "n_heads", "ffn_hidden", "canvas_size", "vocab_size")

AROUND_DEFAULT: dict[str, dict[str, int]] = {
    "default": {},
    "depth-4": {"n_layers": 4},
    "depth-8": {"n_layers": 8},
    "width-192": {"d_model": 192, "n_heads": 3},  # head_dim stays 64 across the widths
    "width-320": {"d_model": 320, "n_heads": 5},
    "width-384": {"d_model": 384, "n_heads": 6},
    "canvas-8": {"canvas_size": 8},
    "canvas-32": {"canvas_size": 32},
    "vocab-4096": {"vocab_size": 4096},
    "vocab-16384": {"vocab_size": 16384},
}

PLANS: dict[str, dict[str, Any]] = {
    "tiny": {  # for tests: two small shapes, seconds each
        "train_preset": "tiny",
        "minutes": 0.0,  # the tiny preset's step count bounds the run
        "base": {"n_layers": 2, "d_model": 64, "n_heads": 2, "canvas_size": 8, "vocab_size": 512},
        "points": {
            "base": {},
            "bigger": {"n_layers": 3, "d_model": 96, "canvas_size": 16, "vocab_size": 384},
        },
    },
    "cpu": {"train_preset": "default", "minutes": 3.0, "base": {}, "points": AROUND_DEFAULT},
    "gpu": {"train_preset": "gpu", "minutes": 1.0, "base": {}, "points": AROUND_DEFAULT},
}


@dataclass(frozen=True)
class Point:
    name: str
    config: ModelConfig

    def shape(self) -> dict[str, int]:
        return {key: getattr(self.config, key) for key in SHAPE_KEYS}


@dataclass(frozen=True)
class Plan:
    name: str
    train_preset: str
    minutes: float  # training budget per point
    points: tuple[Point, ...]

    def select(self, names: list[str]) -> tuple[Point, ...]:
        """The named points in plan order; all of them when `names` is empty."""
        known = {p.name for p in self.points}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InputError(
                f"plan {self.name} has no point {', '.join(unknown)}; "
                f"choose from {', '.join(p.name for p in self.points)}"
            )
        return tuple(p for p in self.points if not names or p.name in names)


def ffn_for(d_model: int) -> int:
    return max(64, round(8 * d_model / 3 / 64) * 64)


def make_point(plan: str, name: str, base: dict, overrides: dict) -> Point:
    """The point's full shape, checked by ModelConfig; a rejected shape names the point."""
    values = {**base, **overrides}
    values.setdefault("ffn_hidden", ffn_for(values.get("d_model", ModelConfig.d_model)))
    bad = sorted(set(values) - set(SHAPE_KEYS))
    if bad:
        raise InputError(f"plan {plan}, point {name}: unknown settings {', '.join(bad)}")
    try:
        return Point(name, ModelConfig.from_dict(values))
    except (ValueError, TypeError) as exc:
        raise InputError(f"plan {plan}, point {name}: {exc}") from None


def plan_from_dict(name: str, spec: dict) -> Plan:
    """A plan from its table or JSON form: train_preset, minutes, base, points."""
    try:
        preset, minutes = spec["train_preset"], float(spec.get("minutes", 0.0))
        base, points = spec.get("base", {}), spec["points"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"plan {name} needs train_preset and points ({exc})") from None
    if preset not in TRAIN_PRESETS:
        raise InputError(f"plan {name}: unknown train preset {preset!r}")
    if not isinstance(points, dict) or not points:
        raise InputError(f"plan {name}: points must be a non-empty object of name -> settings")
    made = tuple(make_point(name, point, base, dict(values)) for point, values in points.items())
    return Plan(name, preset, minutes, made)


def load_plan(name: str | None, plan_file: Path | None) -> Plan:
    """A named plan from PLANS, or the plan a JSON file holds."""
    if plan_file is None:
        if name not in PLANS:
            raise InputError(f"unknown sweep plan {name!r}; choose from {', '.join(PLANS)}")
        return plan_from_dict(name, PLANS[name])
    try:
        spec = json.loads(Path(plan_file).read_text())
    except (OSError, ValueError) as exc:  # missing, unreadable, not UTF-8 or not JSON
        raise InputError(f"plan file {plan_file} is not a readable JSON file: {exc}") from None
    if not isinstance(spec, dict):
        raise InputError(f"plan file {plan_file} must hold a JSON object")
    return plan_from_dict(Path(plan_file).stem, spec)
