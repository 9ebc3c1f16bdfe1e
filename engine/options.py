"""Command-line options several commands share: which model on which runtime, and comma
lists of named choices. Below every command module, so none reaches up for a helper."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from engine.errors import InputError
from engine.loading import RUNTIMES, default_model_path


def add_model_arguments(parser: argparse.ArgumentParser, runtime: bool = True) -> None:
    """Options shared by complete, eval and bench: which model, on which runtime."""
    parser.add_argument(
        "--model", type=Path, default=None, help=f"model folder (default {default_model_path()})"
    )
    if runtime:
        parser.add_argument("--runtime", choices=RUNTIMES, default="auto")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the runtime")


def parse_choices(text: str, choices: Sequence[str], what: str) -> tuple[str, ...]:
    """A comma list option's names, each one of `choices`; InputError naming the others."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(names) - set(choices))
    if unknown or not names:
        raise InputError(f"unknown {what} {unknown}; choose from {', '.join(choices)}")
    return names
