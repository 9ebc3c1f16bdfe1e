"""One bidirectional transformer for every open-weight family (Qwen2 / Llama shapes).

Dream, DiffuCoder, DreamOn and Open-dCoder are Qwen2 with the causal mask removed; LLaDA is a
Llama with the causal mask removed. The only differences are q/k/v biases (Qwen2 yes, LLaDA
no), tied embeddings and the norm epsilon, all in `FamilySpec`. Parameter names follow Hugging
Face's Qwen2/Llama modules (`model.layers.0.self_attn.q_proj.weight`, ...), so Dream folders load
as published and LLaDA folders load after the key renaming in `loading.py`. RMSNorm and the
rotary rotation are the engine's own (engine/model.py): the same math as Hugging Face's.

DualCache (Fast-dLLM): a full forward returns every layer's K/V; a later forward over a window
of W positions starting at `start` reuses those K/V outside the window and recomputes its own.

Letters in shape comments:
  N batch, T sequence length, W window length, E hidden, H query heads, G key/value heads,
  D head dim, F MLP width, V vocabulary, L layers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from engine.families.spec import FamilySpec
from engine.model import RMSNorm, apply_rotary


class Window(NamedTuple):
    """Where a forward runs: rotary tables for its positions, the layer's cached K/V
    (2, N, G, T, D) or None for a full forward, and its first position."""

    rope: tuple[torch.Tensor, torch.Tensor]
    cached: torch.Tensor | None
    start: int


def rotary(
    positions: torch.Tensor, head_dim: int, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (T, D/2) for integer positions (T,), in float32 (Hugging Face's inv_freq)."""
    exponents = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32)
    inv_freq = 1.0 / theta ** (exponents / head_dim)  # (D/2,)
    angles = torch.outer(positions.float(), inv_freq)  # (T, D/2)
    return angles.cos(), angles.sin()


class Attention(nn.Module):
    def __init__(self, spec: FamilySpec) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = spec.heads, spec.kv_heads, spec.head_dim
        kv_width = spec.kv_heads * spec.head_dim
        self.q_proj = nn.Linear(spec.hidden, spec.hidden, bias=spec.qkv_bias)
        self.k_proj = nn.Linear(spec.hidden, kv_width, bias=spec.qkv_bias)
        self.v_proj = nn.Linear(spec.hidden, kv_width, bias=spec.qkv_bias)
        self.o_proj = nn.Linear(spec.hidden, spec.hidden, bias=False)

    def forward(self, x: torch.Tensor, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, W, E) at positions start.. ; returns output and own K/V (2, N, G, W, D)."""
        n, w, _ = x.shape
        q = self.q_proj(x).view(n, w, self.heads, self.head_dim).transpose(1, 2)  # (N, H, W, D)
        k = self.k_proj(x).view(n, w, self.kv_heads, self.head_dim).transpose(1, 2)  # (N, G, W, D)
        v = self.v_proj(x).view(n, w, self.kv_heads, self.head_dim).transpose(1, 2)  # (N, G, W, D)
        q, k = apply_rotary(q, *window.rope), apply_rotary(k, *window.rope)
        own = torch.stack((k, v))  # (2, N, G, W, D)
        cached, start = window.cached, window.start
        if cached is not None:  # DualCache: cached keys before and after the window
            k = torch.cat((cached[0, :, :, :start], k, cached[0, :, :, start + w :]), dim=2)
            v = torch.cat((cached[1, :, :, :start], v, cached[1, :, :, start + w :]), dim=2)
        y = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # (N, H, W, D), no mask
        return self.o_proj(y.transpose(1, 2).reshape(n, w, self.heads * self.head_dim)), own


class MLP(nn.Module):
    def __init__(self, spec: FamilySpec) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(spec.hidden, spec.intermediate, bias=False)
        self.up_proj = nn.Linear(spec.hidden, spec.intermediate, bias=False)
        self.down_proj = nn.Linear(spec.intermediate, spec.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (N, W, F) inside


class DecoderLayer(nn.Module):
    def __init__(self, spec: FamilySpec) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(spec.hidden, spec.rms_eps)
        self.self_attn = Attention(spec)
        self.post_attention_layernorm = RMSNorm(spec.hidden, spec.rms_eps)
        self.mlp = MLP(spec)

    def forward(self, x: torch.Tensor, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        attended, own = self.self_attn(self.input_layernorm(x), window)
        x = x + attended
        return x + self.mlp(self.post_attention_layernorm(x)), own


class Backbone(nn.Module):
    """Hugging Face's `model.` prefix: embeddings, layers, final norm."""

    def __init__(self, spec: FamilySpec) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(spec.vocab_size, spec.hidden)
        self.layers = nn.ModuleList(DecoderLayer(spec) for _ in range(spec.layers))
        self.norm = RMSNorm(spec.hidden, spec.rms_eps)


class FamilyTransformer(nn.Module):
    def __init__(self, spec: FamilySpec) -> None:
        super().__init__()
        self.spec = spec
        self.model = Backbone(spec)
        self.lm_head = nn.Linear(spec.hidden, spec.vocab_size, bias=False)

    def forward(
        self, ids: torch.Tensor, start: int = 0, cache: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states (N, W, E) for ids (N, W) at positions start..start+W-1, and their K/V
        (L, 2, N, G, W, D). With `cache` (L, 2, N, G, T, D) from a full forward, the window
        attends to the cached K/V of every position outside it (DualCache)."""
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)  # (W,)
        rope = rotary(positions, self.spec.head_dim, self.spec.rope_theta)
        x = self.model.embed_tokens(ids)  # (N, W, E)
        own_kv = []
        for index, layer in enumerate(self.model.layers):
            x, own = layer(x, Window(rope, None if cache is None else cache[index], start))
            own_kv.append(own)
        return x, torch.stack(own_kv)  # (N, W, E), (L, 2, N, G, W, D)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Float32 logits (N, W, V) for the hidden states the sampler needs, and only those."""
        return self.lm_head(self.model.norm(hidden)).float()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
