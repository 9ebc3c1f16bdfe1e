"""Builds real tiny model folders for the serving tests: a byte-level BPE tokenizer trained on
a few stdlib files (special tokens at ids 0..4) and a `tiny` preset model, random or briefly
trained to fill one gap, saved as safetensors shards."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

from engine.checkpoint import save_weights
from engine.config import model_preset
from engine.tokens import EOM_ID, MASK_ID, MIDDLE_ID, PREFIX_ID, SPECIAL_TOKENS, SUFFIX_ID

TRAIN_PREFIX = "def add(a, b):\n    return "
TRAIN_MIDDLE = "a + b"
TRAIN_SUFFIX = "\n\n\nprint(add(1, 2))\n"


def train_tokenizer(path: Path, vocab_size: int = 600) -> Path:
    """A byte-level BPE tokenizer.json trained on a few real standard-library modules."""
    import argparse
    import difflib
    import json as json_module

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    texts = [inspect.getsource(m) for m in (argparse, difflib, json_module, textwrap)]
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(path))
    return path


def fim_ids(tokenizer, prefix: str, suffix: str) -> list[int]:
    """The SPM context the embedded completer builds."""
    suffix_ids = tokenizer.encode(suffix, add_special_tokens=False).ids
    prefix_ids = tokenizer.encode(prefix, add_special_tokens=False).ids
    return [SUFFIX_ID, *suffix_ids, PREFIX_ID, *prefix_ids, MIDDLE_ID]


def build_model_folder(folder: Path, train_steps: int = 0, seed: int = 0) -> Path:
    """A tiny model folder; with train_steps > 0 the model learns to fill TRAIN_MIDDLE."""
    import torch
    from tokenizers import Tokenizer

    from engine.model import DiffusionFIM

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer.from_file(str(train_tokenizer(folder / "tokenizer.json")))
    config = model_preset("tiny", vocab_size=tokenizer.get_vocab_size())
    torch.manual_seed(seed)
    model = DiffusionFIM(config)
    if train_steps:
        _memorize(model, tokenizer, train_steps)
    config.to_json(folder / "config.json")
    weights = {name: t.detach().numpy() for name, t in model.state_dict().items()}
    save_weights(weights, folder, max_shard_bytes=200_000)  # several shards, like the real one
    return folder


def _memorize(model, tokenizer, steps: int) -> None:
    """Overfit the denoiser on one FIM example: random masks over the gap plus <eom> padding."""
    import torch
    import torch.nn.functional as F

    c = model.config.canvas_size
    context = torch.tensor([fim_ids(tokenizer, TRAIN_PREFIX, TRAIN_SUFFIX)])
    middle = tokenizer.encode(TRAIN_MIDDLE, add_special_tokens=False).ids
    target = torch.tensor([(middle + [EOM_ID] * c)[:c]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        keep = torch.rand(8, c) > torch.rand(8, 1)
        noisy = torch.where(keep, target.expand(8, -1), torch.full_like(target, MASK_ID))
        kv = model.encode_context(context, model.empty_cache())
        logits = model.denoise(noisy, kv.expand(-1, -1, 8, -1, -1, -1))
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.expand(8, -1).reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def shared_folder(tmp_path_factory, name: str = "trained", train_steps: int = 150) -> Path:
    """One tiny model folder per test session, built and exported on first use. Tests that
    damage files copy it first (`copy_folder`)."""
    folder = tmp_path_factory.getbasetemp() / f"tiny-{name}"
    if not (folder / "denoise.onnx").exists():
        from engine.training.export import export_graphs

        build_model_folder(folder, train_steps=train_steps)
        export_graphs(folder)
    return folder


def copy_folder(source: Path, target: Path) -> Path:
    import shutil

    return Path(shutil.copytree(source, target))
