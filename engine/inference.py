"""The model's two serving passes in the form traced into the ONNX graphs: the cache arrives
per layer (keys[l] and values[l], each (1, H, P, D)) and is only read, never copied.

engine/model.py concatenates [past; own] keys and values in every layer, and a graph taking
one (L, 2, 1, H, P, D) tensor slices it per layer; both copy the whole cache on every call.
Here the attention scores against the cache and against the new tokens are computed apart
and joined only at the softmax, so a call costs reads of the cache, not copies of it. The
results equal model.encode_context and model.denoise (tests/test_runtime_onnx.py).

Letters: N candidates, T new tokens (context or canvas), P cached, E d_model, H heads,
D head dim, L layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from engine.model import apply_rotary

if TYPE_CHECKING:
    from collections.abc import Sequence

    from engine.model import Attention, DiffusionFIM


def encode_new(
    model: DiffusionFIM,
    ids: torch.Tensor,
    keys: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
) -> torch.Tensor:
    """K/V (L, 2, 1, H, T, D) of context ids (1, T) placed after the cache; causal."""
    length = ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()  # (T, T)
    _, new = _forward(model, model.embed(ids), keys, values, causal)
    return torch.stack(new)


def denoise_shared_cache(
    model: DiffusionFIM,
    canvas: torch.Tensor,
    keys: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Logits (N, C, V) for canvas ids (N, C) after the cache, shared by the N rows."""
    hidden, _ = _forward(model, model.embed(canvas), keys, values, None)
    return model.logits(hidden)


def rotary_at(model: DiffusionFIM, start, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (T, D/2) for positions start..start+T, computed as engine/model.py builds
    its tables; computing them keeps two 4096-row tables out of every graph file."""
    config = model.config
    half = config.head_dim // 2
    inv_freq = config.rope_theta ** (-torch.arange(half, dtype=torch.float32) / half)  # (D/2,)
    positions = torch.arange(length, dtype=torch.float32) + start  # (T,)
    angles = positions[:, None] * inv_freq[None, :]  # (T, D/2)
    return angles.cos(), angles.sin()


def _forward(model, x, keys, values, own_mask) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run every block on x (N, T, E); returns the hidden states and each layer's own K/V."""
    cos, sin = rotary_at(model, keys[0].shape[2], x.shape[1])  # (T, D/2) each
    own_kv = []
    for layer, block in enumerate(model.blocks):
        past = (keys[layer], values[layer])
        attended, own = _attend(block.attn, block.attn_norm(x), cos, sin, past, own_mask)
        x = x + attended
        x = x + block.mlp(block.mlp_norm(x))
        own_kv.append(own)  # (2, N, H, T, D)
    return x, own_kv


def _attend(
    attn: Attention, x: torch.Tensor, cos, sin, past, own_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of x (N, T, E) over [past; own] keys with one softmax; past K and V are
    (1, H, P, D) and broadcast over N. Returns the output and own K/V (2, N, H, T, D)."""
    n, t, e = x.shape
    q, k, v = attn.qkv(x).view(n, t, 3, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # (N, H, T, D) each
    context = q @ past[0].transpose(-1, -2)  # (N, H, T, P)
    own = q @ k.transpose(-1, -2)  # (N, H, T, T)
    if own_mask is not None:
        own = own.masked_fill(~own_mask, float("-inf"))
    scores = torch.cat((context, own), dim=-1) * attn.head_dim**-0.5  # (N, H, T, P+T)
    probs = scores.softmax(dim=-1)
    split = past[0].shape[2]
    y = probs[..., :split] @ past[1] + probs[..., split:] @ v  # (N, H, T, D)
    return attn.out(y.transpose(1, 2).reshape(n, t, e)), torch.stack((k, v))
