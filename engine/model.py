"""The block-causal diffusion FIM transformer, in one file.

Sequence layout (SPM): `<fim_suffix> suffix <fim_prefix> prefix <fim_middle> canvas`.

Attention rule, the same in training and at inference:
- context tokens attend causally (token by token), so their keys/values depend only on
  earlier context and can be cached across denoising steps and across keystrokes;
- canvas tokens (one block of C) attend to all of the context before them and
  bidirectionally to each other.

Training (BD3-LM style) runs a clean copy of the sequence and K noised copies side by side:
every block of C tokens in a noised copy is a denoising target that sees the clean tokens
before its block, exactly as a canvas sees the cached context at inference, and nothing of
the other noised copies.

Letters in shape comments:
  N batch, S training sequence length, K noised copies per sequence, T context length,
  P cached (past) length, C canvas length, E d_model, H heads, D head dim, F SwiGLU width,
  V vocabulary, L layers.

The context K/V cache is one tensor of shape (L, 2, N, H, T, D): keys at [:, 0], values at
[:, 1], rotary positions already applied. One tensor keeps the ONNX graphs' inputs simple.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (x.float() * scale).type_as(x) * self.weight


def rotary_tables(config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin for every position, each (max_positions, D/2)."""
    half = config.head_dim // 2
    inv_freq = config.rope_theta ** (-torch.arange(half, dtype=torch.float32) / half)
    angles = torch.outer(torch.arange(config.max_positions, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (N, H, T, D) by per-position angles; cos/sin are (T, D/2)."""
    x1, x2 = x.float().chunk(2, dim=-1)  # (N, H, T, D/2) each
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.type_as(x)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        past: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend x (N, T, E) over [past; own] keys. Returns output and own K/V (2, N, H, T, D)."""
        n, t, e = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # (N, H, T, D) each
        own = torch.stack((k, v))  # (2, N, H, T, D)
        if past is not None:
            k = torch.cat((past[0], k), dim=2)  # (N, H, P+T, D)
            v = torch.cat((past[1], v), dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, H, T, D)
        return self.out(y.transpose(1, 2).reshape(n, t, e)), own


class SwiGLU(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(config.d_model, 2 * config.ffn_hidden, bias=False)
        self.down = nn.Linear(config.ffn_hidden, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (N, T, F) each
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        past: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        attended, own_kv = self.attn(self.attn_norm(x), cos, sin, past, mask)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), own_kv


def context_mask(past_len: int | torch.Tensor, new_len: int, device: torch.device) -> torch.Tensor:
    """(T, P+T) bool: new context token i sees every cached token and new tokens up to itself."""
    keys = torch.arange(past_len + new_len, device=device)
    queries = torch.arange(new_len, device=device) + past_len
    return keys[None, :] <= queries[:, None]


def block_diffusion_mask(
    seq_len: int, canvas_size: int, copies: int = 1, device: torch.device | None = None
) -> torch.Tensor:
    """((1+K)S, (1+K)S) bool for [clean; noisy_1; ...; noisy_K] training: the clean copy is
    causal; a token of noisy copy k in block b sees the clean tokens before block b and every
    token of block b in copy k, never another noisy copy (each copy is its own inference)."""
    index = torch.arange((1 + copies) * seq_len, device=device)
    copy, pos = index // seq_len, index % seq_len  # ((1+K)S,) each: copy 0 is the clean one
    start = pos - pos % canvas_size  # first position of each token's block
    q_copy, q_pos, q_start = copy[:, None], pos[:, None], start[:, None]  # queries: rows
    k_copy, k_pos, k_start = copy[None, :], pos[None, :], start[None, :]  # keys: columns
    from_clean = (k_copy == 0) & torch.where(q_copy == 0, k_pos <= q_pos, k_pos < q_start)
    own_block = (q_copy > 0) & (k_copy == q_copy) & (k_start == q_start)
    return from_clean | own_block


class DiffusionFIM(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = RMSNorm(config.d_model, config.norm_eps)
        cos, sin = rotary_tables(config)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for block in self.blocks:  # residual projections scaled down with depth (GPT-2)
            std = 0.02 / math.sqrt(2 * config.n_layers)
            nn.init.normal_(block.attn.out.weight, std=std)
            nn.init.normal_(block.mlp.down.weight, std=std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Output head tied to the embedding: (N, T, E) -> (N, T, V)."""
        return self.final_norm(hidden) @ self.embed.weight.T

    def encode_context(self, ids: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        """Extend the cache (L, 2, N, H, P, D) with context ids (N, T) -> (L, 2, N, H, P+T, D)."""
        past_len, new_len = past.shape[4], ids.shape[1]
        cos = self.rope_cos[past_len : past_len + new_len]  # (T, D/2)
        sin = self.rope_sin[past_len : past_len + new_len]
        mask = context_mask(past_len, new_len, ids.device)  # (T, P+T)
        x = self.embed(ids)  # (N, T, E)
        new_kv = []
        for layer, block in enumerate(self.blocks):
            x, own_kv = block(x, cos, sin, past[layer], mask)
            new_kv.append(own_kv)  # (2, N, H, T, D)
        return torch.cat((past, torch.stack(new_kv)), dim=4)  # (L, 2, N, H, P+T, D)

    def denoise(self, canvas: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """Logits (N, C, V) for canvas ids (N, C) placed right after the cached context."""
        start, length = kv.shape[4], canvas.shape[1]
        cos = self.rope_cos[start : start + length]  # (C, D/2)
        sin = self.rope_sin[start : start + length]
        x = self.embed(canvas)  # (N, C, E)
        for layer, block in enumerate(self.blocks):
            x, _ = block(x, cos, sin, kv[layer], None)  # canvas sees all context and itself
        return self.logits(x)

    def forward(self, clean: torch.Tensor, noisy: torch.Tensor, head: bool = True) -> torch.Tensor:
        """Training pass over clean ids (N, S) and K noised copies of them laid end to end
        (N, KS); logits for all copies (N, (1+K)S, V), or with head=False the last hidden
        states (N, (1+K)S, E), for a head applied only where a loss is taken.

        Positions [:S] are the clean copy (causal); [kS:(k+1)S] is noised copy k (block
        diffusion), which sees the clean copy and its own block only. K copies share one
        clean pass, so each extra copy adds diffusion targets without another context pass.
        """
        seq_len = clean.shape[1]
        self._check_training_layout(seq_len, noisy.shape[1])
        copies = noisy.shape[1] // seq_len  # K
        cos = self.rope_cos[:seq_len].repeat(1 + copies, 1)  # ((1+K)S, D/2): positions repeat
        sin = self.rope_sin[:seq_len].repeat(1 + copies, 1)
        c = self.config.canvas_size
        mask = block_diffusion_mask(seq_len, c, copies, clean.device)  # ((1+K)S, (1+K)S)
        x = self.embed(torch.cat((clean, noisy), dim=1))  # (N, (1+K)S, E)
        for block in self.blocks:
            x, _ = block(x, cos, sin, None, mask)
        return self.logits(x) if head else x

    def _check_training_layout(self, seq_len: int, noisy_len: int) -> None:
        """S must be whole blocks and the noised ids whole copies of the clean ones."""
        if seq_len % self.config.canvas_size:
            raise ValueError(
                f"sequence length {seq_len} is not a multiple of canvas_size "
                f"{self.config.canvas_size}"
            )
        if noisy_len == 0 or noisy_len % seq_len:
            raise ValueError(
                f"noised length {noisy_len} is not a whole number of copies of the "
                f"sequence length {seq_len}"
            )

    def empty_cache(self, batch: int = 1) -> torch.Tensor:
        """A zero-length cache (L, 2, N, H, 0, D) to start encoding from."""
        c, weight = self.config, self.embed.weight
        shape = (c.n_layers, 2, batch, c.n_heads, 0, c.head_dim)
        return torch.zeros(shape, device=weight.device, dtype=weight.dtype)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
