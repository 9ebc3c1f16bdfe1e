"""The torch runtime: engine/model.py behind the numpy `Runtime` protocol of engine/sampler.py.

It runs the passes of engine/inference.py, the form the ONNX graphs are traced from, and is
the fallback when a folder has no graphs. torch is imported when a runtime is built, never
when this module is imported.
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
    batches = True  # encode_batch, denoise_batch: several requests' rows in one call

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

        from engine.inference import encode_new

        with torch.inference_mode():
            cache = self._tensor(past)
            new = encode_new(self.model, self._tensor(ids), *per_layer(cache))
            kv = torch.cat((cache, new), dim=4)  # (L, 2, 1, H, P+T, D)
        return kv.cpu().numpy()

    def denoise(self, canvas: np.ndarray, kv: np.ndarray) -> np.ndarray:
        import torch

        from engine.inference import denoise_shared_cache

        with torch.inference_mode():
            cache = per_layer(self._tensor(kv))
            logits = denoise_shared_cache(self.model, self._tensor(canvas), *cache)
        return logits.float().cpu().numpy()

    def encode_batch(self, ids: np.ndarray, lengths: np.ndarray, kv: np.ndarray) -> np.ndarray:
        return self._batch(ids, lengths, kv, canvas=False)

    def denoise_batch(self, canvas: np.ndarray, lengths: np.ndarray, kv: np.ndarray) -> np.ndarray:
        return self._batch(canvas, lengths, kv, canvas=True)

    def _batch(self, tokens, lengths, kv, canvas: bool) -> np.ndarray:
        import torch

        from engine.inference import own_caches

        with torch.inference_mode():
            cache = per_layer(self._tensor(kv))
            tokens, lengths = self._tensor(tokens), self._tensor(lengths)
            out = own_caches(self.model, tokens, lengths, *cache, canvas)
        return out.float().cpu().numpy()

    def _tensor(self, array: np.ndarray):  # -> torch.Tensor
        import torch

        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)


def per_layer(kv):  # -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]
    """Views of a cache (L, 2, N, H, P, D): the L keys and the L values, each (N, H, P, D)."""
    return kv[:, 0].unbind(0), kv[:, 1].unbind(0)


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
