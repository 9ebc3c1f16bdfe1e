"""Open-weight diffusion coders (Dream, Dream-Coder, DiffuCoder, DreamOn, LLaDA, Open-dCoder)
loaded natively in torch from a local folder, behind the same `Completer` as diffill's model.

`engine.loading` dispatches a `--model PATH` here when `is_family_folder` says so. Reading the
config needs only JSON; torch is imported when a completer is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import InputError, ModelLoadError
from engine.families.spec import detect_family, read_config

if TYPE_CHECKING:
    from engine.completer import Completer


def is_family_folder(path: Path) -> bool:
    """True when path/config.json names a supported family (never raises)."""
    try:
        return detect_family(read_config(Path(path)), Path(path)) is not None
    except ModelLoadError:
        return False


def open_completer(
    path: Path,
    device: str | None = None,
    score: str = "confidence",
    dual_cache: bool = True,
    block_size: int = 32,
) -> Completer:
    """Load the folder (bf16 on CUDA when present, float32 on CPU) as a Completer.

    score: how a position's readiness is judged (confidence, entropy or margin);
    dual_cache: Fast-dLLM's DualCache within each block; block_size: tokens per block.
    """
    from engine.families.completer import FamilyCompleter
    from engine.families.infill import DecodeSettings
    from engine.families.loading import load_family
    from engine.families.unmask import SCORES

    if score not in SCORES or block_size <= 0:
        raise InputError(
            f"bad family decoding settings: score {score!r} (choose from {', '.join(SCORES)}), "
            f"block_size {block_size} (must be positive)"
        )
    settings = DecodeSettings(score=score, dual_cache=dual_cache, block_size=block_size)
    return FamilyCompleter(load_family(Path(path), device), settings)
