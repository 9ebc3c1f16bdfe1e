"""Which masked positions to fill at a denoising step, and with what.

Scores (all in [0, 1], 1 = certain, so one threshold serves each):
- `confidence`: probability of the chosen token (Fast-dLLM, LLaDA's low_confidence remasking);
- `entropy`: exp(-H) of the position's distribution (Dream's `alg="entropy"`, DreamOn, DiffuCoder);
- `margin`: top-1 minus top-2 probability (Dream's `topk_margin`).

The rule is Fast-dLLM's threshold parallel decoding: fill every position whose score reaches the
threshold, and always at least the best one (or as many as a step budget requires). `ar` mode
fills the leftmost masked position only: one token per step, the reference for speed.
"""

from __future__ import annotations

import math

import torch

SCORES = ("confidence", "entropy", "margin")


def predict(
    logits: torch.Tensor, score: str, temperature: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens (M,) and scores (M,) for masked-position logits (M, V), forbidden ids at -inf."""
    probs = torch.softmax(logits / temperature if temperature > 0 else logits, dim=-1)  # (M, V)
    if temperature > 0:
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (M,)
    else:
        tokens = probs.argmax(dim=-1)
    if score == "entropy":
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)  # (M,)
        return tokens, torch.exp(-entropy)
    if score == "margin":
        top2 = probs.topk(2, dim=-1).values  # (M, 2)
        return tokens, top2[:, 0] - top2[:, 1]
    if score == "confidence":
        return tokens, probs.gather(-1, tokens[:, None]).squeeze(-1)
    raise ValueError(f"unknown unmasking score {score!r}; choose from {', '.join(SCORES)}")


def choose(
    scores: torch.Tensor, threshold: float, at_least: int, leftmost_only: bool
) -> torch.Tensor:
    """Indices into the masked positions (ordered left to right) to fill this step."""
    if leftmost_only:
        return torch.zeros(1, dtype=torch.long, device=scores.device)
    confident = (scores >= threshold).nonzero().squeeze(-1)
    if confident.numel() >= at_least:
        return confident
    return scores.topk(min(at_least, scores.numel())).indices


def step_quota(masked: int, steps_done: int, max_steps: int | None) -> int:
    """Fewest positions to fill now so the block finishes within max_steps."""
    if max_steps is None:
        return 1
    return max(1, math.ceil(masked / max(1, max_steps - steps_done)))
