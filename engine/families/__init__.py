"""Open-weight diffusion coders (Dream, Dream-Coder, DiffuCoder, DreamOn, LLaDA, Open-dCoder)
loaded natively in torch from a local folder, behind the same `Completer` as diffill's model.

`engine.loading` dispatches a `--model PATH` here when `is_family_folder` says so. Reading the
config needs only JSON; torch is imported when a completer is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ModelLoadError
from engine.families.spec import detect_family, read_config

if TYPE_CHECKING:
    from engine.completer import Completer


def is_family_folder(path: Path) -> bool:
    """True when path/config.json names a supported family (never raises)."""
    try:
        return detect_family(read_config(Path(path)), Path(path)) is not None
    except ModelLoadError:
        return False


def open_completer(path: Path, device: str | None = None) -> Completer:
    """Load the folder (bf16 on CUDA when present, float32 on CPU) as a Completer."""
    from engine.families.completer import FamilyCompleter
    from engine.families.loading import load_family

    return FamilyCompleter(load_family(Path(path), device))
