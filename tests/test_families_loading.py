"""Family folders in each publisher's exact format load through `open_completer`, the path a
user's `--model PATH` takes; every broken folder gives one clear ModelLoadError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.completer import CompletionRequest
from engine.config import model_preset
from engine.errors import InputError, ModelLoadError
from engine.families import is_family_folder, open_completer
from engine.families.spec import DREAM, DREAM_MASK_ID, LLADA, LLADA_MASK_ID, QWEN2_MDM, parse_spec
from engine.families.synthetic import DREAMON_SPECIAL, TINY, TINY_SPECIAL, write_folder

FAMILIES = [DREAM, LLADA, QWEN2_MDM]


def edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("family", FAMILIES)
def test_published_format_loads_and_completes(tmp_path: Path, family: str) -> None:
    folder = write_folder(tmp_path / family, family)
    assert (folder / "model.safetensors.index.json").exists()
    assert len(list(folder.glob("model-*-of-*.safetensors"))) > 1  # sharded, as published
    assert is_family_folder(folder)
    completer = open_completer(folder, device="cpu")
    info = completer.describe()
    assert info["mask_id"] == TINY_SPECIAL["mask"]
    assert info["shifted_logits"] is (family != LLADA)
    assert info["runtime"] == "torch cpu float32"
    result = completer.complete(CompletionRequest("def f(x):\n    return ", "\n", max_tokens=8))
    assert 0 < result.candidates[0].tokens <= 8
    assert result.timings.context_tokens == completer.count_tokens("def f(x):\n    return \n")


def test_llada_tensor_names_are_olmo_style(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "llada", LLADA)
    index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    assert "model.transformer.wte.weight" in index
    assert "model.transformer.blocks.0.attn_out.weight" in index
    assert "model.transformer.ff_out.weight" in index
    assert not any(name.startswith("model.layers.") for name in index)


def test_not_a_family(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    model_preset("tiny").to_json(own / "config.json")
    assert not is_family_folder(own)
    assert not is_family_folder(tmp_path / "missing")
    (tmp_path / "file").write_text("not a folder")
    assert not is_family_folder(tmp_path / "file")
    plain_qwen = write_folder(tmp_path / "qwen", QWEN2_MDM)
    (plain_qwen / "tokenizer_config.json").unlink()  # an autoregressive Qwen2: no mask token
    (plain_qwen / "tokenizer.json").write_text(json.dumps({"added_tokens": []}))
    assert not is_family_folder(plain_qwen)


def test_documented_mask_ids_when_config_is_silent(tmp_path: Path) -> None:
    dream = tmp_path / "dream"
    dream.mkdir()
    config = {"model_type": "Dream", "hidden_size": 64, "intermediate_size": 128,
              "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 152064}  # fmt: skip
    (dream / "config.json").write_text(json.dumps(config))
    assert parse_spec(dream).mask_id == DREAM_MASK_ID
    assert parse_spec(dream).kv_heads == 4  # defaults to the query heads
    llada = tmp_path / "llada"
    llada.mkdir()
    config = {"model_type": "llada", "d_model": 64, "n_heads": 4, "n_layers": 2,
              "vocab_size": 126464, "mlp_hidden_size": 128}  # fmt: skip
    (llada / "config.json").write_text(json.dumps(config))
    assert parse_spec(llada).mask_id == LLADA_MASK_ID


def test_dreamon_expand_token_comes_from_config(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dreamon", DREAM, special=DREAMON_SPECIAL)
    spec = parse_spec(folder)
    assert spec.expand_id == DREAMON_SPECIAL["expand"]
    assert "expand/delete" in open_completer(folder, "cpu").describe()["length"]


def test_malformed_config(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dream", DREAM)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"config\.json is not valid JSON"):
        open_completer(folder, "cpu")
    edit_dream = write_folder(tmp_path / "dream2", DREAM)
    edit_config(edit_dream, hidden_size="wide")
    with pytest.raises(ModelLoadError, match=r"'hidden_size' must be int, got 'wide'"):
        open_completer(edit_dream, "cpu")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_hidden_layers": None}, "missing key 'num_hidden_layers'"),
        ({"rope_scaling": {"type": "yarn"}}, "unsupported rope_scaling"),
        ({"num_key_value_heads": 3}, "do not divide evenly"),
        ({"mask_token_id": 9999}, "mask token id 9999 is outside the vocabulary"),
    ],
)
def test_bad_config_values(tmp_path: Path, changes: dict, message: str) -> None:
    folder = write_folder(tmp_path / "dream", DREAM)
    config = json.loads((folder / "config.json").read_text())
    config.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        del config[key]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=message):
        open_completer(folder, "cpu")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"block_type": "sequential"}, "unsupported block_type = 'sequential'"),
        ({"clip_qkv": 8.0}, "unsupported clip_qkv = 8.0"),
        ({"architectures": ["LLaDAMoEModelLM"]}, r"unsupported architecture \(mixture of"),
    ],
)
def test_unsupported_llada_options(tmp_path: Path, changes: dict, message: str) -> None:
    folder = write_folder(tmp_path / "llada", LLADA)
    edit_config(folder, **changes)
    assert is_family_folder(folder)  # recognised, then refused with a reason
    with pytest.raises(ModelLoadError, match=message):
        open_completer(folder, "cpu")


def test_context_is_cut_to_the_model_positions(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dream", DREAM)
    edit_config(folder, max_position_embeddings=48)
    completer = open_completer(folder, "cpu")
    result = completer.complete(CompletionRequest("x = 1\n" * 40, "y = 2\n" * 10, max_tokens=8))
    assert result.timings.context_tokens == 40  # 48 positions less the 8-token gap


def test_missing_shard(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dream", DREAM)
    shard = sorted(folder.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(ModelLoadError, match=f"missing weight shards: {shard.name}"):
        open_completer(folder, "cpu")


def test_corrupt_shard(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dream", DREAM)
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match=f"cannot read weights .*{shard.name}"):
        open_completer(folder, "cpu")


def test_weights_that_do_not_match_config(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dream", DREAM)
    edit_config(folder, intermediate_size=256)
    with pytest.raises(ModelLoadError, match=r"wrong shape tensors model\.layers\.0\.mlp"):
        open_completer(folder, "cpu")
    folder = write_folder(tmp_path / "llada", LLADA)
    edit_config(folder, n_layers=3)
    with pytest.raises(ModelLoadError, match=r"missing tensors model\.layers\.2\."):
        open_completer(folder, "cpu")


def test_tokenizer_mismatch(tmp_path: Path) -> None:
    big = write_folder(tmp_path / "big", DREAM, shape={**TINY, "vocab": 400},
                       special={"eos": 390, "mask": 391})  # fmt: skip
    folder = write_folder(tmp_path / "dream", DREAM)
    (folder / "tokenizer.json").write_text((big / "tokenizer.json").read_text())
    with pytest.raises(
        ModelLoadError, match=r"tokenizer mismatch: .* has 392 tokens but the model"
    ):
        open_completer(folder, "cpu")
    short = write_folder(tmp_path / "short", DREAM, special={"eos": 280, "mask": 281})
    (folder / "tokenizer.json").write_text((short / "tokenizer.json").read_text())
    with pytest.raises(ModelLoadError, match=r"tokenizer mismatch: .* no token at the mask id 301"):
        open_completer(folder, "cpu")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no tokenizer\.json"):
        open_completer(folder, "cpu")


def test_cuda_runs_bf16_or_says_there_is_no_gpu(tmp_path: Path) -> None:
    import torch

    folder = write_folder(tmp_path / "dream", DREAM)
    if torch.cuda.is_available():
        assert open_completer(folder, "cuda").describe()["runtime"] == "torch cuda bfloat16"
    else:
        with pytest.raises(ModelLoadError, match="torch sees no CUDA GPU"):
            open_completer(folder, "cuda")


def test_binary_input_is_refused(tmp_path: Path) -> None:
    completer = open_completer(write_folder(tmp_path / "dream", DREAM), "cpu")
    with pytest.raises(InputError, match="NUL byte"):
        completer.complete(CompletionRequest("x = 1\x00", ""))
    with pytest.raises(InputError, match="max_tokens must be positive"):
        completer.complete(CompletionRequest("x = ", "", max_tokens=0))


def test_decoding_settings_are_checked(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dream", DREAM)
    entropy = open_completer(folder, "cpu", score="entropy", dual_cache=False, block_size=8)
    assert (entropy.describe()["score"], entropy.describe()["dual_cache"]) == ("entropy", False)
    with pytest.raises(InputError, match="score 'loss' \\(choose from confidence, entropy"):
        open_completer(folder, "cpu", score="loss")
