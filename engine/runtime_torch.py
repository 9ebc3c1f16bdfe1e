"""The torch runtime: engine/model.py behind the numpy `Runtime` protocol of engine/sampler.py.

Used for export (the ONNX graphs are traced from it) and as the fallback when no ONNX graphs
exist. torch is imported when a runtime is built, never when this module is imported.

Letters: N candidates, C canvas, P cached context, E d_model, H heads, D head dim.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.checkpoint import load_config, load_weights
from engine.config import ModelConfig
from engine.errors import ModelLoadError

if TYPE_CHECKING:
    from engine.model import DiffusionFIM


class TorchRuntime:
    name = "torch"

    def __init__(self, model: DiffusionFIM, threads: int | None = 2) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.model = model.eval()
        self.config: ModelConfig = model.config
        self.device = model.embed.weight.device

    @classmethod
    def from_folder(
        cls, folder: Path, device: str | None = None, threads: int | None = 2
    ) -> TorchRuntime:
        """Build the model from config.json and the safetensors weights of a model folder."""
        return cls(load_model(Path(folder), device), threads)

    def encode(self, ids: np.ndarray, past: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            kv = self.model.encode_context(self._tensor(ids), self._tensor(past))
        return kv.cpu().numpy()

    def denoise(self, canvas: np.ndarray, kv: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            cache = self._tensor(kv)
            keys, values = cache[:, 0].unbind(0), cache[:, 1].unbind(0)  # L views of (1, H, P, D)
            logits = denoise_shared_cache(self.model, self._tensor(canvas), keys, values)
        return logits.float().cpu().numpy()

    def _tensor(self, array: np.ndarray):  # -> torch.Tensor
        import torch

        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)


def denoise_shared_cache(model: DiffusionFIM, canvas, keys, values):  # -> torch.Tensor
    """model.denoise for canvas (N, C) against a batch-1 cache given per layer (keys[l] and
    values[l] are (1, H, P, D)), computed without copying the cache: the graph takes each
    layer's K and V as its own input (no slicing of one big tensor), scores against the
    context broadcast over N, and the softmax spans [context; canvas] without concatenating
    keys or values. A step then reads the cache once instead of copying it several times."""
    start, length = keys[0].shape[2], canvas.shape[1]
    cos = model.rope_cos[start : start + length]  # (C, D/2)
    sin = model.rope_sin[start : start + length]
    x = model.embed(canvas)  # (N, C, E)
    for layer, block in enumerate(model.blocks):
        past = (keys[layer], values[layer])
        x = x + _attend_shared(block.attn, block.attn_norm(x), cos, sin, past)
        x = x + block.mlp(block.mlp_norm(x))
    return model.logits(x)


def _attend_shared(attn, x, cos, sin, past):  # -> torch.Tensor
    """Canvas attention over [past; own] keys; past is K and V (1, H, P, D), shared by N rows."""
    import torch

    from engine.model import apply_rotary

    n, c, e = x.shape
    q, k, v = attn.qkv(x).view(n, c, 3, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # (N, H, C, D) each
    scale = attn.head_dim**-0.5
    context = q @ past[0].transpose(-1, -2)  # (N, H, C, P): broadcast over N
    own = q @ k.transpose(-1, -2)  # (N, H, C, C)
    probs = (torch.cat((context, own), dim=-1) * scale).softmax(dim=-1)  # (N, H, C, P+C)
    split = past[0].shape[2]
    y = probs[..., :split] @ past[1] + probs[..., split:] @ v  # (N, H, C, D)
    return attn.out(y.transpose(1, 2).reshape(n, c, e))


def load_model(folder: Path, device: str | None = None) -> DiffusionFIM:
    """The torch model of a model folder, with clear errors for mismatched weights."""
    import torch

    from engine.model import DiffusionFIM

    config = load_config(folder)
    state = {name: torch.from_numpy(array) for name, array in load_weights(folder).items()}
    model = DiffusionFIM(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ModelLoadError(f"weights in {folder} do not match config.json: {detail}") from None
    return model.to(device or "cpu").eval()
