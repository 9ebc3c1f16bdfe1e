"""Random checkpoints in each publisher's exact on-disk format, for tests and benchmarks.

No weights can be downloaded here, so the loaders are proven on folders written the way the
publishers write them: the same config keys, the same tensor names, sharded safetensors with a
`model.safetensors.index.json`, and a `tokenizer.json` that holds the mask (and DreamOn's expand)
token at the id the config names. Shapes are parameters: a tiny model for tests, the real
Dream-7B or Open-dCoder-0.5B shapes for `diffill bench family`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.families.loading import llada_name
from engine.families.spec import DREAM, LLADA, QWEN2_MDM, FamilySpec

# Published shapes (research/diffusion-anchors.md §2): Dream-Coder-7B and Open-dCoder-0.5B.
DREAM_7B = {
    "hidden": 3584,
    "layers": 28,
    "heads": 28,
    "kv_heads": 4,
    "intermediate": 18944,
    "vocab": 152064,
    "rope_theta": 1e6,
}
OPEN_DCODER_05B = {
    "hidden": 896,
    "layers": 24,
    "heads": 14,
    "kv_heads": 2,
    "intermediate": 4864,
    "vocab": 151936,
    "rope_theta": 1e6,
    "tie": True,
}
TINY = {
    "hidden": 64,
    "layers": 2,
    "heads": 4,
    "kv_heads": 2,
    "intermediate": 128,
    "vocab": 320,
    "rope_theta": 10000.0,
}
TINY_SPECIAL = {"eos": 300, "mask": 301}  # ids inside the tiny vocabulary
DREAMON_SPECIAL = {**TINY_SPECIAL, "expand": 302}


def config_json(family: str, shape: dict[str, Any], special: dict[str, int]) -> dict[str, Any]:
    """config.json exactly as the family's publisher writes it."""
    if family == LLADA:
        return _llada_config(shape, special)
    config = {
        "architectures": ["DreamModel"] if family == DREAM else ["Qwen2ForCausalLM"],
        "model_type": "Dream" if family == DREAM else "qwen2",
        "hidden_size": shape["hidden"],
        "intermediate_size": shape["intermediate"],
        "num_attention_heads": shape["heads"],
        "num_key_value_heads": shape["kv_heads"],
        "num_hidden_layers": shape["layers"],
        "vocab_size": shape["vocab"],
        "rope_theta": shape["rope_theta"],
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "tie_word_embeddings": bool(shape.get("tie", False)),
        "rope_scaling": None,
        "use_sliding_window": False,
        "eos_token_id": special["eos"],
        "pad_token_id": special["eos"],
        "torch_dtype": "bfloat16",
    }
    if family == DREAM:
        config["auto_map"] = {
            "AutoConfig": "configuration_dream.DreamConfig",
            "AutoModel": "modeling_dream.DreamModel",
        }
        config["mask_token_id"] = special["mask"]
        if "expand" in special:
            config["expand_token_id"] = special["expand"]
    return config


def _llada_config(shape: dict[str, Any], special: dict[str, int]) -> dict[str, Any]:
    return {
        "architectures": ["LLaDAModelLM"],
        "model_type": "llada",
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "d_model": shape["hidden"],
        "n_heads": shape["heads"],
        "n_kv_heads": shape["kv_heads"],
        "n_layers": shape["layers"],
        "mlp_hidden_size": shape["intermediate"],
        "mlp_ratio": 4,
        "vocab_size": shape["vocab"],
        "embedding_size": shape["vocab"],
        "rope": True,
        "rope_theta": shape["rope_theta"],
        "rms_norm_eps": 1e-5,
        "block_type": "llama",
        "layer_norm_type": "rms",
        "activation_type": "silu",
        "include_bias": False,
        "include_qkv_bias": False,
        "weight_tying": bool(shape.get("tie", False)),
        "alibi": False,
        "max_sequence_length": 4096,
        "mask_token_id": special["mask"],
        "eos_token_id": special["eos"],
        "pad_token_id": special["eos"],
        "torch_dtype": "bfloat16",
    }


def random_weights(family: str, shape: dict[str, Any], seed: int = 0) -> dict[str, np.ndarray]:
    """Float32 weights under the family's published tensor names (std 0.02, norms near 1)."""
    rng = np.random.default_rng(seed)
    weights = {
        name: _random(rng, dims, name) for name, dims in tensor_shapes(family, shape).items()
    }
    return {llada_name(k): v for k, v in weights.items()} if family == LLADA else weights


def _random(rng: np.random.Generator, dims: tuple[int, ...], name: str) -> np.ndarray:
    if "norm" in name:
        return (1.0 + 0.1 * rng.standard_normal(dims)).astype(np.float32)
    return (0.02 * rng.standard_normal(dims)).astype(np.float32)


def tensor_shapes(family: str, shape: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape under Hugging Face names (LLaDA files rename them, llada_name)."""
    e, f, v = shape["hidden"], shape["intermediate"], shape["vocab"]
    kv = shape["kv_heads"] * e // shape["heads"]
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (v, e),
        "model.norm.weight": (e,),
    }
    if not shape.get("tie", False):
        shapes["lm_head.weight"] = (v, e)
    for i in range(shape["layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (e,),
            p + "post_attention_layernorm.weight": (e,),
            p + "self_attn.q_proj.weight": (e, e),
            p + "self_attn.k_proj.weight": (kv, e),
            p + "self_attn.v_proj.weight": (kv, e),
            p + "self_attn.o_proj.weight": (e, e),
            p + "mlp.gate_proj.weight": (f, e),
            p + "mlp.up_proj.weight": (f, e),
            p + "mlp.down_proj.weight": (e, f),
        }
        if family != LLADA:
            shapes |= {
                p + "self_attn.q_proj.bias": (e,),
                p + "self_attn.k_proj.bias": (kv,),
                p + "self_attn.v_proj.bias": (kv,),
            }
    return shapes


def byte_tokenizer(vocab_size: int, special: dict[str, int]):  # -> tokenizers.Tokenizer
    """Byte-level BPE over the 256 byte symbols, padded with filler tokens so the special tokens
    sit at the ids the config names (as <|mask|> sits at 151666 in Dream's 151k vocabulary)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet, key=ord))}
    names = {"eos": "<|endoftext|>", "mask": "<|mask|>", "expand": "<|expand|>"}
    by_id = {token_id: names[role] for role, token_id in special.items()}
    for token_id in range(len(vocab), max(by_id) + 1):
        vocab[by_id.get(token_id, f"<|filler_{token_id}|>")] = token_id
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(name, special=True) for name in by_id.values()])
    return tokenizer


def write_folder(
    folder: Path,
    family: str,
    shape: dict[str, Any] = TINY,
    special: dict[str, int] = TINY_SPECIAL,
    max_shard_bytes: int = 100_000,
    seed: int = 0,
) -> Path:
    """A complete model folder as the publisher ships it; small shards force the index path."""
    from engine.checkpoint import save_weights

    folder = Path(folder)
    save_weights(random_weights(family, shape, seed), folder, max_shard_bytes)
    config = config_json(family, shape, special)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    byte_tokenizer(shape["vocab"], special).save(str(folder / "tokenizer.json"))
    if family == QWEN2_MDM:  # Open-dCoder: the mask token is named by the tokenizer config
        (folder / "tokenizer_config.json").write_text(json.dumps({"mask_token": "<|mask|>"}))
    return folder


def random_model(spec: FamilySpec, device: str, dtype: str, seed: int = 0):  # -> FamilyTransformer
    """A model of `spec`'s shape with random weights made directly on the device, in dtype."""
    import torch

    from engine.families.transformer import FamilyTransformer

    with torch.device("meta"):
        model = FamilyTransformer(spec).to(getattr(torch, dtype))
    model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    if spec.tie_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()
