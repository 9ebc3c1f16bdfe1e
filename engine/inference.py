"""The model's two serving passes in the form traced into the ONNX graphs: the cache arrives
per layer (keys[l] and values[l], each (1, H, P, D)) and is only read, never copied.

engine/model.py concatenates [past; own] keys and values in every layer, and a graph taking
one (L, 2, 1, H, P, D) tensor slices it per layer; both copy the whole cache on every call.
Here the attention scores against the cache and against the new tokens are computed apart
and joined only at the softmax, so a call costs reads of the cache, not copies of it. The
results equal model.encode_context and model.denoise (tests/test_runtime_onnx.py).

The norms, the rotation and the SwiGLU are written again here in the form ONNX Runtime
optimises: a norm it fuses into one node, queries and keys rotated in one pass, slices instead
of chunks (a chunk exports as a sequence split), no fp32-to-fp32 casts: 246 operators after
ORT's optimisation against 413, a warm int8 step at 1024 cached tokens 12% cheaper
(`diffill bench steps`, BENCHMARKS.md "Cheaper denoising steps").

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
import torch.nn.functional as F

if TYPE_CHECKING:
    from collections.abc import Sequence

    from engine.model import Attention, DiffusionFIM, RMSNorm, SwiGLU


def encode_new(
    model: DiffusionFIM,
    ids: torch.Tensor,
    keys: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
) -> torch.Tensor:
    """K/V (L, 2, 1, H, T, D) of context ids (1, T) placed after the cache; causal."""
    length = ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()  # (T, T)
    rotary = rotary_at(model, keys[0].shape[2] + torch.arange(length))
    _, new = _forward(model, model.embed(ids), keys, values, rotary, causal)
    return torch.stack(new)


def denoise_shared_cache(
    model: DiffusionFIM,
    canvas: torch.Tensor,
    keys: Sequence[torch.Tensor],
    values: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Logits (N, C, V) for canvas ids (N, C) after the cache, shared by the N rows."""
    rotary = rotary_at(model, keys[0].shape[2] + torch.arange(canvas.shape[1]))
    hidden, _ = _forward(model, model.embed(canvas), keys, values, rotary, None)
    return _logits(model, hidden)


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
    rotary = rotary_at(model, lengths[:, None] + torch.arange(t, device=lengths.device))
    slots = torch.arange(keys[0].shape[2], device=lengths.device)  # (P,)
    past_mask = (slots[None, :] < lengths[:, None])[:, None, None, :]  # (N, 1, 1, P)
    hidden, new = _forward(model, model.embed(tokens), keys, values, rotary, causal, past_mask)
    return _logits(model, hidden) if canvas else torch.stack(new)


def rotary_at(model: DiffusionFIM, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables for integer positions (..., T), each (..., T, 1, 1, D) to broadcast over
    the (N, T, 2, H, D) queries and keys: cos twice, and sin negated then plain, so that a
    rotation is x * cos + halves_swapped(x) * sin. Computed as engine/model.py builds its
    tables; computing them keeps two 4096-row tables out of every graph file."""
    config = model.config
    half = config.head_dim // 2
    inv_freq = config.rope_theta ** (-torch.arange(half, dtype=torch.float32) / half)  # (D/2,)
    angles = positions.float()[..., None] * inv_freq  # (..., T, D/2)
    cos, sin = angles.cos(), angles.sin()
    tables = torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)  # (..., T, D)
    return tables[0][..., None, None, :], tables[1][..., None, None, :]


def _forward(
    model, x, keys, values, rotary, own_mask, past_mask=None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run every block on x (N, T, E) with rotary tables at its positions (`rotary_at`);
    returns the hidden states and each layer's own K/V. past_mask (N, 1, 1, P) hides cache
    padding."""
    own_kv = []
    for layer, block in enumerate(model.blocks):
        past = (keys[layer], values[layer])
        masks = (own_mask, past_mask)
        attended, own = _attend(block.attn, _norm(block.attn_norm, x), rotary, past, masks)
        x = x + attended
        x = x + _mlp(block.mlp, _norm(block.mlp_norm, x))
        own_kv.append(own)  # (2, N, H, T, D)
    return x, own_kv


def _norm(norm: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """engine/model.py's RMSNorm written as x / sqrt(mean(x^2) + eps) * weight, the pattern
    ONNX Runtime fuses into one SimplifiedLayerNormalization (serving is fp32: no casts)."""
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight


def _logits(model: DiffusionFIM, hidden: torch.Tensor) -> torch.Tensor:
    """engine/model.py's tied output head (N, T, E) -> (N, T, V), with `_norm`."""
    return _norm(model.final_norm, hidden) @ model.embed.weight.T


def _mlp(mlp: SwiGLU, x: torch.Tensor) -> torch.Tensor:
    """engine/model.py's SwiGLU with its halves sliced, not chunked (a chunk exports as a
    sequence split, two extra graph nodes a layer)."""
    both = mlp.gate_up(x)  # (N, T, 2F)
    width = both.shape[-1] // 2
    return mlp.down(F.silu(both[..., :width]) * both[..., width:])


def _attend(
    attn: Attention, x: torch.Tensor, rotary, past, masks
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of x (N, T, E) over [past; own] keys with one softmax; past K and V are
    (1, H, P, D), broadcast over N, or (N, H, P, D). masks are (own, past), either None.
    Queries and keys are rotated together, and the queries scaled before the products.
    Returns the output and own K/V (2, N, H, T, D)."""
    own_mask, past_mask = masks
    n, t, e = x.shape
    qkv = attn.qkv(x).view(n, t, 3, attn.n_heads, attn.head_dim)  # (N, T, 3, H, D)
    q, k = _rotate(qkv[:, :, :2], *rotary).permute(2, 0, 3, 1, 4)  # (N, H, T, D) each
    v = qkv[:, :, 2].transpose(1, 2)  # (N, H, T, D)
    q = q * attn.head_dim**-0.5
    context = q @ past[0].transpose(-1, -2)  # (N, H, T, P)
    if past_mask is not None:
        context = context.masked_fill(~past_mask, float("-inf"))
    own = q @ k.transpose(-1, -2)  # (N, H, T, T)
    if own_mask is not None:
        own = own.masked_fill(~own_mask, float("-inf"))
    probs = torch.cat((context, own), dim=-1).softmax(dim=-1)  # (N, H, T, P+T)
    split = past[0].shape[2]
    y = probs[..., :split] @ past[1] + probs[..., split:] @ v  # (N, H, T, D)
    return attn.out(y.transpose(1, 2).reshape(n, t, e)), torch.stack((k, v))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """engine/model.py's apply_rotary on x (..., D) with `rotary_at`'s tables."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((x[..., half:], x[..., :half]), dim=-1) * sin
