"""Load a family folder as its publisher ships it: config.json, safetensors (one file or shards
with an index) and tokenizer.json. No network, no `trust_remote_code`, no `transformers`.

Every way a folder can be wrong ends in one ModelLoadError naming the file and the problem:
a missing or corrupt shard, tensors missing or of the wrong shape, a tokenizer whose ids do
not fit the embedding or that lacks the mask token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ModelLoadError
from engine.families.spec import LLADA, FamilySpec, parse_spec

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

    from engine.families.transformer import FamilyTransformer

# LLaDA (OLMo-style) tensor name pieces -> Hugging Face Llama names, applied in this order.
LLADA_RENAMES = (
    ("model.transformer.wte.", "model.embed_tokens."),
    ("model.transformer.ln_f.", "model.norm."),
    ("model.transformer.ff_out.", "lm_head."),
    ("model.transformer.blocks.", "model.layers."),
    (".attn_norm.", ".input_layernorm."),
    (".ff_norm.", ".post_attention_layernorm."),
    (".q_proj.", ".self_attn.q_proj."),
    (".k_proj.", ".self_attn.k_proj."),
    (".v_proj.", ".self_attn.v_proj."),
    (".attn_out.", ".self_attn.o_proj."),
    (".ff_proj.", ".mlp.gate_proj."),
    (".up_proj.", ".mlp.up_proj."),
    (".ff_out.", ".mlp.down_proj."),
)


def hf_name(llada: str) -> str:
    """The Hugging Face Llama name of a LLaDA checkpoint tensor."""
    for old, new in LLADA_RENAMES:
        llada = llada.replace(old, new)
    return llada


def llada_name(hf: str) -> str:
    """The LLaDA checkpoint name of a Hugging Face Llama tensor (inverse of `hf_name`)."""
    for old, new in LLADA_RENAMES:
        hf = hf.replace(new, old)
    return hf


@dataclass
class LoadedFamily:
    folder: Path
    spec: FamilySpec
    model: FamilyTransformer
    tokenizer: Tokenizer
    device: torch.device
    dtype: torch.dtype


def runtime_for(device: str | None) -> tuple[torch.device, torch.dtype]:
    """bf16 on CUDA, float32 on CPU; the default is CUDA when torch sees a GPU."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but torch sees no CUDA GPU")
    if chosen.type not in ("cuda", "cpu"):
        raise ModelLoadError(f"unsupported device {device!r}; use cpu or cuda")
    return chosen, torch.bfloat16 if chosen.type == "cuda" else torch.float32


def load_family(folder: Path, device: str | None = None) -> LoadedFamily:
    folder = Path(folder)
    spec = parse_spec(folder)
    tokenizer = load_tokenizer(folder, spec)
    torch_device, dtype = runtime_for(device)
    state = read_state(folder, spec, torch_device, dtype)
    model = build_model(spec, state, folder)
    return LoadedFamily(folder, spec, model, tokenizer, torch_device, dtype)


def load_tokenizer(folder: Path, spec: FamilySpec) -> Tokenizer:
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.exists():
        raise ModelLoadError(f"no tokenizer.json in model folder {folder}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for malformed files
        raise ModelLoadError(f"cannot read {path}: {exc}") from None
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > spec.vocab_size:
        raise ModelLoadError(
            f"tokenizer mismatch: {path} has {size} tokens but the model's embedding has "
            f"{spec.vocab_size} rows"
        )
    for role, token_id in (("mask", spec.mask_id), ("expand", spec.expand_id)):
        if token_id is not None and tokenizer.id_to_token(token_id) is None:
            raise ModelLoadError(
                f"tokenizer mismatch: {path} has no token at the {role} id {token_id}"
            )
    return tokenizer


def read_state(
    folder: Path, spec: FamilySpec, device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Every tensor of the folder under Hugging Face names, on `device` in `dtype`."""
    from safetensors import safe_open

    from engine.checkpoint import weight_files

    state = {}
    for path in weight_files(folder):
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as shard:
                for name in shard.keys():  # noqa: SIM118 (safe_open is not a dict)
                    key = hf_name(name) if spec.family == LLADA else name
                    state[key] = shard.get_tensor(name).to(dtype)
        except Exception as exc:  # safetensors raises several types for truncated files
            raise ModelLoadError(f"cannot read weights {path}: {exc}") from None
    return state


def build_model(
    spec: FamilySpec, state: dict[str, torch.Tensor], folder: Path
) -> FamilyTransformer:
    """The model with the folder's tensors assigned (no copy, no random init)."""
    import torch

    from engine.families.transformer import FamilyTransformer

    if spec.tie_embeddings and "lm_head.weight" not in state:
        state["lm_head.weight"] = state.get("model.embed_tokens.weight")  # type: ignore[assignment]
    with torch.device("meta"):
        model = FamilyTransformer(spec)
    check_tensors(model, state, folder)
    model.load_state_dict(state, strict=True, assign=True)
    if spec.tie_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()


def check_tensors(model: FamilyTransformer, state: dict[str, torch.Tensor], folder: Path) -> None:
    expected = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    missing = sorted(k for k in expected if state.get(k) is None)
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} (config says {expected[k]})"
        for k in sorted(expected)
        if state.get(k) is not None and tuple(state[k].shape) != expected[k]
    ]
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            raise ModelLoadError(
                f"weights in {folder} do not match config.json: {label} tensors "
                f"{', '.join(names[:3])}{more}"
            )
