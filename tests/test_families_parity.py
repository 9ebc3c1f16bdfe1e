"""The native models compute what the publishers' architectures compute: Dream and Open-dCoder
equal `transformers`' Qwen2 under an all-visible attention mask, LLaDA equals `transformers`'
Llama under the same mask after the documented key renaming (loading.LLADA_RENAMES)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from engine.families.loading import hf_name, load_family
from engine.families.spec import DREAM, LLADA, QWEN2_MDM, FamilySpec
from engine.families.synthetic import OPEN_DCODER_05B, TINY, write_folder

SEQ = 24


def reference_model(spec: FamilySpec, folder: Path) -> torch.nn.Module:
    """transformers' Qwen2 (Dream family) or Llama (LLaDA) holding the folder's tensors."""
    common = {
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "rope_theta": spec.rope_theta,
        "rms_norm_eps": spec.rms_eps,
        "tie_word_embeddings": spec.tie_embeddings,
        "attn_implementation": "sdpa",
    }
    if spec.family == LLADA:
        model = LlamaForCausalLM(LlamaConfig(**common, attention_bias=False, mlp_bias=False))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    state = {}
    for shard in sorted(folder.glob("model-*.safetensors")):
        state.update(load_file(str(shard)))
    state = {hf_name(k) if spec.family == LLADA else k: v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected
    assert missing in ([], ["lm_head.weight"])  # tied embeddings have no lm_head tensor
    return model.eval()


def logits_both_ways(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    loaded = load_family(folder, "cpu")
    reference = reference_model(loaded.spec, folder)
    ids = torch.randint(0, 300, (1, SEQ), generator=torch.Generator().manual_seed(0))
    all_visible = torch.ones(1, 1, SEQ, SEQ, dtype=torch.bool)
    with torch.no_grad():
        hidden, _ = loaded.model(ids)
        ours = loaded.model.logits(hidden)
        theirs = reference(input_ids=ids, attention_mask=all_visible).logits
        causal = reference(input_ids=ids).logits
    return ours, theirs, causal


def test_dream_equals_qwen2_bidirectional(tmp_path: Path) -> None:
    ours, theirs, causal = logits_both_ways(write_folder(tmp_path / "dream", DREAM))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert (ours - causal).abs().max() > 1e-2  # the mask matters: Dream is not causal


def test_llada_equals_llama_bidirectional_after_renaming(tmp_path: Path) -> None:
    ours, theirs, causal = logits_both_ways(write_folder(tmp_path / "llada", LLADA))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert (ours - causal).abs().max() > 1e-2


def test_open_dcoder_tied_embeddings_equal_qwen2(tmp_path: Path) -> None:
    shape = {**TINY, "tie": OPEN_DCODER_05B["tie"]}
    folder = write_folder(tmp_path / "odc", QWEN2_MDM, shape=shape)
    index = (folder / "model.safetensors.index.json").read_text()
    assert "lm_head.weight" not in index  # the head is the embedding, as in Qwen2.5-0.5B
    ours, theirs, _ = logits_both_ways(folder)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
