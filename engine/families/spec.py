"""What an open-weight diffusion checkpoint is, read from its own `config.json`.

Three publishers' formats, one normalised `FamilySpec`:
- Dream family (Dream, Dream-Coder, DiffuCoder, DreamOn): `model_type "Dream"`, Qwen2 keys,
  shifted logits (position i-1 predicts token i), mask id 151666, DreamOn's `expand_token_id`.
- LLaDA: `model_type "llada"`, OLMo-style keys (`d_model`, `n_layers`, ...), unshifted logits,
  mask id 126336.
- Open-dCoder: a plain `qwen2` config whose tokenizer gained a mask token; shifted logits.

This module reads JSON only (no torch), so `diffill doctor` and the language server can ask
what a folder holds without loading weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError

DREAM, LLADA, QWEN2_MDM = "dream", "llada", "qwen2-mdm"
FAMILY_NAMES = {DREAM: "Dream", LLADA: "LLaDA", QWEN2_MDM: "Open-dCoder (Qwen2 masked diffusion)"}

# Documented ids, used only when config.json does not say (research/diffusion-anchors.md §2).
DREAM_MASK_ID, DREAM_EOS_ID = 151666, 151643
LLADA_MASK_ID, LLADA_EOS_ID = 126336, 126081
# LLaDA's OLMo options this loader implements, and those it refuses rather than ignore.
LLADA_REQUIRED = (
    ("block_type", "llama"),
    ("layer_norm_type", "rms"),
    ("rope", True),
    ("activation_type", "silu"),
)
LLADA_UNSUPPORTED = (
    "include_bias",
    "alibi",
    "clip_qkv",
    "input_emb_norm",
    "scale_logits",
    "attention_layer_norm",
    "multi_query_attention",
)
MASK_TOKEN_NAMES = ("<M>", "<|mask|>", "<mask>", "<|mdm_mask|>")


@dataclass(frozen=True)
class FamilySpec:
    """The shape and special ids of one checkpoint, whatever its publisher called them."""

    family: str
    vocab_size: int  # rows of the embedding matrix (may exceed the tokenizer's size)
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    rope_theta: float
    rms_eps: float
    qkv_bias: bool
    tie_embeddings: bool
    mask_id: int
    eos_id: int
    expand_id: int | None  # DreamOn: a predicted expand becomes two masks
    shifted: bool  # logits at position i-1 predict token i
    max_positions: int
    dtype: str  # as published (torch_dtype), for reports

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def name(self) -> str:
        return FAMILY_NAMES[self.family] + (" (DreamOn expand/delete)" if self.expand_id else "")


def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"no config.json in model folder {folder}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return values


def detect_family(config: dict[str, Any], folder: Path) -> str | None:
    """The family a config belongs to, or None for anything else (diffill's own models)."""
    model_type = str(config.get("model_type", "")).lower()
    architectures = [str(a) for a in config.get("architectures") or []]
    if model_type == "dream" or "DreamModel" in architectures:
        return DREAM
    if model_type == "llada" or any(a.startswith("LLaDA") for a in architectures):
        return LLADA
    if model_type == "qwen2" and find_mask_id(config, folder) is not None:
        return QWEN2_MDM
    return None


def find_mask_id(config: dict[str, Any], folder: Path) -> int | None:
    """A Qwen2 checkpoint's mask id: config, then tokenizer_config.json, then tokenizer.json."""
    if isinstance(config.get("mask_token_id"), int):
        return config["mask_token_id"]
    added = _added_tokens(Path(folder))
    wanted = _tokenizer_config(Path(folder)).get("mask_token")
    if isinstance(wanted, dict):
        wanted = wanted.get("content")
    for name in (wanted, *MASK_TOKEN_NAMES):
        if name in added:
            return added[name]
    return None


def _added_tokens(folder: Path) -> dict[str, int]:
    try:
        tokens = json.loads((folder / "tokenizer.json").read_text()).get("added_tokens") or []
        return {t["content"]: t["id"] for t in tokens}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    try:
        values = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def parse_spec(folder: Path) -> FamilySpec:
    """Read and check a family folder's config.json; ModelLoadError names what is wrong."""
    return spec_from_config(read_config(folder), folder)


def spec_from_config(config: dict[str, Any], folder: Path) -> FamilySpec:
    """The checked spec of a parsed config.json (folder: where its tokenizer files live)."""
    family = detect_family(config, folder)
    if family is None:
        raise ModelLoadError(
            f"{folder}/config.json is not a supported diffusion family (model_type "
            f"{config.get('model_type')!r}); supported: Dream, LLaDA, Qwen2 with a mask token"
        )
    reader = _ConfigReader(config, folder, FAMILY_NAMES[family])
    spec = _read_llada(reader) if family == LLADA else _read_qwen2(reader, family, folder)
    return _checked(spec, folder)


class _ConfigReader:
    """Typed access to config keys: the first wrong or missing key becomes one clear error."""

    def __init__(self, config: dict[str, Any], folder: Path, family: str) -> None:
        self.config, self.folder, self.family = config, folder, family

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        value = self.config.get(key, default)
        if value is ...:
            raise ModelLoadError(f"{self.folder}/config.json ({self.family}): missing key {key!r}")
        if value is None and default is None:
            return None
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ModelLoadError(
                f"{self.folder}/config.json ({self.family}): {key!r} must be "
                f"{getattr(kind, '__name__', 'an id or list of ids')}, got {value!r}"
            )
        return value

    def unsupported(self, key: str, value: Any) -> None:
        raise ModelLoadError(
            f"{self.folder}/config.json ({self.family}): unsupported {key} = {value!r}"
        )


def _read_qwen2(r: _ConfigReader, family: str, folder: Path) -> FamilySpec:
    if r.config.get("rope_scaling"):
        r.unsupported("rope_scaling", r.config["rope_scaling"])
    if r.config.get("use_sliding_window"):
        r.unsupported("use_sliding_window", True)
    heads = r.get("num_attention_heads", int)
    dream = family == DREAM
    mask_id = (
        r.get("mask_token_id", int, DREAM_MASK_ID) if dream else find_mask_id(r.config, folder)
    )
    return FamilySpec(
        family=family,
        vocab_size=r.get("vocab_size", int),
        hidden=r.get("hidden_size", int),
        layers=r.get("num_hidden_layers", int),
        heads=heads,
        kv_heads=r.get("num_key_value_heads", int, heads),
        intermediate=r.get("intermediate_size", int),
        rope_theta=r.get("rope_theta", float, 10000.0),
        rms_eps=r.get("rms_norm_eps", float, 1e-6),
        qkv_bias=True,
        tie_embeddings=r.get("tie_word_embeddings", bool, False),
        mask_id=mask_id,  # a Qwen2 folder only counts as a family when it has one
        eos_id=_first_id(r.get("eos_token_id", (int, list), DREAM_EOS_ID), DREAM_EOS_ID),
        expand_id=r.get("expand_token_id", int, None),
        shifted=True,
        max_positions=r.get("max_position_embeddings", int, 32768),
        dtype=str(r.config.get("torch_dtype") or r.config.get("dtype") or "float32"),
    )


def _read_llada(r: _ConfigReader) -> FamilySpec:
    moe = [a for a in r.config.get("architectures") or [] if "moe" in str(a).lower()]
    if moe or "moe" in str(r.config.get("model_type", "")).lower():
        r.unsupported("architecture (mixture of experts)", moe or r.config["model_type"])
    for key, wanted in LLADA_REQUIRED:
        if r.config.get(key, wanted) != wanted:
            r.unsupported(key, r.config[key])
    for key in LLADA_UNSUPPORTED:
        if r.config.get(key):
            r.unsupported(key, r.config[key])
    hidden, heads = r.get("d_model", int), r.get("n_heads", int)
    ratio = r.get("mlp_ratio", int, 4)
    return FamilySpec(
        family=LLADA,
        vocab_size=r.get("embedding_size", int, None) or r.get("vocab_size", int),
        hidden=hidden,
        layers=r.get("n_layers", int),
        heads=heads,
        kv_heads=r.get("n_kv_heads", int, None) or heads,
        intermediate=r.get("mlp_hidden_size", int, None) or ratio * hidden,
        rope_theta=r.get("rope_theta", float, 10000.0),
        rms_eps=r.get("rms_norm_eps", float, 1e-5),
        qkv_bias=r.get("include_qkv_bias", bool, False),
        tie_embeddings=r.get("weight_tying", bool, False),
        mask_id=r.get("mask_token_id", int, LLADA_MASK_ID),
        eos_id=_first_id(r.get("eos_token_id", (int, list), LLADA_EOS_ID), LLADA_EOS_ID),
        expand_id=None,
        shifted=False,
        max_positions=r.get("max_sequence_length", int, 4096),
        dtype=str(r.config.get("torch_dtype") or r.config.get("dtype") or "float32"),
    )


def _first_id(value: int | list[int], default: int) -> int:
    """Configs give one EOS id or a list of them; the first one ends a middle."""
    if isinstance(value, list):
        return value[0] if value and isinstance(value[0], int) else default
    return value


def _checked(spec: FamilySpec, folder: Path) -> FamilySpec:
    where = f"{folder}/config.json ({FAMILY_NAMES[spec.family]})"
    sizes = ("vocab_size", "hidden", "layers", "heads", "kv_heads", "intermediate")
    bad = {k: getattr(spec, k) for k in sizes if getattr(spec, k) <= 0}
    if bad:
        raise ModelLoadError(f"{where}: sizes must be positive, got {bad}")
    if spec.hidden % spec.heads or spec.heads % spec.kv_heads or spec.head_dim % 2:
        raise ModelLoadError(
            f"{where}: hidden {spec.hidden}, heads {spec.heads}, kv heads {spec.kv_heads} "
            "do not divide evenly (rotary needs an even head dim)"
        )
    for label, token in (("mask", spec.mask_id), ("eos", spec.eos_id), ("expand", spec.expand_id)):
        if token is not None and not 0 <= token < spec.vocab_size:
            raise ModelLoadError(
                f"{where}: {label} token id {token} is outside the vocabulary ({spec.vocab_size})"
            )
    return spec
