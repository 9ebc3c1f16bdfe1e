"""The model's two serving passes in the form traced into the ONNX graphs: the cache arrives
per layer (keys[l] and values[l], each (1, H, P, D)) and is only read, never copied.

engine/model.py concatenates [past; own] keys and values in every layer, and a graph taking
one (L, 2, 1, H, P, D) tensor slices it per layer; both copy the whole cache on every call.
Here the attention scores against the cache and against the new tokens are computed apart
and joined only at the softmax, so a call costs reads of the cache, not copies of it. The
results equal model.encode_context and model.denoise (tests/test_runtime_onnx.py).

`own_caches` is the batched calls of `diffill serve`: N canvases (or context chunks) of N
different requests, each against its own context. The
caches are padded to the longest (P) and each row's true length masks the padding out and
places its tokens' rotary positions.

Letters: N candidates (or requests), T new tokens (context or canvas), P cached, E d_model,
H heads, D head dim, L layers.
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
    cos, sin = rotary_at(model, keys[0].shape[2], length)  # (T, D/2) each
    _, new = _forward(model, model.embed(ids), keys, values, (cos, sin), causal)
    return torch.stack(new)


def denoise_shared_cache(
    model: DiffusionFIM,
    canvas: torch.Tensor,
    keys: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Logits (N, C, V) for canvas ids (N, C) after the cache, shared by the N rows."""
    cos, sin = rotary_at(model, keys[0].shape[2], canvas.shape[1])  # (C, D/2) each
    hidden, _ = _forward(model, model.embed(canvas), keys, values, (cos, sin), None)
    return model.logits(hidden)


def own_caches(
    model: DiffusionFIM,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    keys: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
    canvas: bool,
) -> torch.Tensor:
    """Tokens (N, T), row n after its own cache: keys[l] and values[l] are (N, H, P, D) with
    row n's first lengths[n] positions real, the rest padding. A canvas (bidirectional) gives
    logits (N, T, V); context (causal) gives its K/V (L, 2, N, H, T, D), where a row shorter
    than T is right-padded (a real token never attends to the padding after it, and the
    caller drops the padding's K/V)."""
    t = tokens.shape[1]
    causal = None if canvas else torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril()
    rotary, past_mask = _own_rows(model, lengths, t, keys[0].shape[2])
    hidden, new = _forward(model, model.embed(tokens), keys, values, rotary, causal, past_mask)
    return model.logits(hidden) if canvas else torch.stack(new)


def _own_rows(model: DiffusionFIM, lengths: torch.Tensor, new: int, past: int):
    """Per row n: rotary (cos, sin) (N, 1, T, D/2) at positions lengths[n]..+T, and the mask
    (N, 1, 1, P) of the real cache positions."""
    positions = lengths[:, None] + torch.arange(new, device=lengths.device)  # (N, T)
    angles = _angles(model, positions)  # (N, T, D/2)
    rotary = (angles.cos()[:, None], angles.sin()[:, None])  # (N, 1, T, D/2): broadcast over H
    slots = torch.arange(past, device=lengths.device)  # (P,)
    return rotary, (slots[None, :] < lengths[:, None])[:, None, None, :]  # (N, 1, 1, P)


def rotary_at(model: DiffusionFIM, start, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (T, D/2) for positions start..start+T, computed as engine/model.py builds
    its tables; computing them keeps two 4096-row tables out of every graph file."""
    angles = _angles(model, torch.arange(length) + start)  # (T, D/2)
    return angles.cos(), angles.sin()


def _angles(model: DiffusionFIM, positions: torch.Tensor) -> torch.Tensor:
    """Rotary angles (..., D/2) for integer positions of any shape (...)."""
    config = model.config
    half = config.head_dim // 2
    inv_freq = config.rope_theta ** (-torch.arange(half, dtype=torch.float32) / half)  # (D/2,)
    return positions.float()[..., None] * inv_freq  # (..., D/2)


def _forward(
    model, x, keys, values, rotary, own_mask, past_mask=None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run every block on x (N, T, E) with rotary (cos, sin) at its positions; returns the
    hidden states and each layer's own K/V. past_mask (N, 1, 1, P) hides cache padding."""
    cos, sin = rotary
    own_kv = []
    for layer, block in enumerate(model.blocks):
        past = (keys[layer], values[layer])
        masks = (own_mask, past_mask)
        attended, own = _attend(block.attn, block.attn_norm(x), cos, sin, past, masks)
        x = x + attended
        x = x + block.mlp(block.mlp_norm(x))
        own_kv.append(own)  # (2, N, H, T, D)
    return x, own_kv


def _attend(
    attn: Attention, x: torch.Tensor, cos, sin, past, masks
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of x (N, T, E) over [past; own] keys with one softmax; past K and V are
    (1, H, P, D), broadcast over N, or (N, H, P, D). masks are (own, past), either None.
    Returns the output and own K/V (2, N, H, T, D)."""
    own_mask, past_mask = masks
    n, t, e = x.shape
    q, k, v = attn.qkv(x).view(n, t, 3, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # (N, H, T, D) each
    context = q @ past[0].transpose(-1, -2)  # (N, H, T, P)
    if past_mask is not None:
        context = context.masked_fill(~past_mask, float("-inf"))
    own = q @ k.transpose(-1, -2)  # (N, H, T, T)
    if own_mask is not None:
        own = own.masked_fill(~own_mask, float("-inf"))
    scores = torch.cat((context, own), dim=-1) * attn.head_dim**-0.5  # (N, H, T, P+T)
    probs = scores.softmax(dim=-1)
    split = past[0].shape[2]
    y = probs[..., :split] @ past[1] + probs[..., split:] @ v  # (N, H, T, D)
    return attn.out(y.transpose(1, 2).reshape(n, t, e)), torch.stack((k, v))
