"""Loading the byte-level BPE tokenizer that belongs with a model folder, checked.

The five special tokens of engine.tokens sit at ids 0..4, which the model, sampler and graphs
rely on; a tokenizer.json that disagrees is refused with one line naming the problem.
(Training one is engine/training/tokenizer.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ModelLoadError
from engine.tokens import SPECIAL_TOKENS

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def check_special_tokens(tokenizer: Tokenizer, where: object) -> None:
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        found = tokenizer.token_to_id(token)
        if found != expected_id:
            raise ModelLoadError(
                f"{where}: special token {token} has id {found}, expected {expected_id}"
            )


def load_tokenizer(path: Path) -> Tokenizer:
    """Load tokenizer.json with a one-line error for a missing, corrupt or foreign file."""
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"tokenizer not found: {path}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for bad JSON or schema
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"tokenizer {path} is corrupt: {reason}") from None
    check_special_tokens(tokenizer, path)
    return tokenizer
