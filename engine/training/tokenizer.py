"""`diffill tokenizer`: a byte-level BPE trained on the corpus' train split.

Code is mostly indentation, so the pre-tokenizer keeps a newline together with the
indentation that follows it: `"\\n" + 16 spaces` becomes one token once BPE has seen it often,
and a completion that opens a nested block costs one token, not five. The five special
tokens of engine.tokens sit at ids 0..4, which the model, sampler and graphs rely on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import InputError
from engine.tokenizer import check_special_tokens, load_tokenizer
from engine.tokens import SPECIAL_TOKENS

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Chunks BPE may merge within: a newline run with its indentation; trailing blanks; a word,
# up to three digits or a punctuation run, each with one optional leading space; other blanks.
PRE_TOKENIZE = (
    r"[\r\n]+[ \t]*"
    r"|[ \t]+(?=[\r\n])"
    r"| ?[\p{L}_][\p{L}\p{N}_]*"
    r"| ?\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}_]+"
    r"|[ \t]+"
)


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE with diffill's pre-tokenizer and decoder."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRE_TOKENIZE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(texts: Iterator[str], vocab_size: int) -> Tokenizer:
    """Train BPE on texts; special tokens take ids 0..4 in engine.tokens order."""
    from tokenizers import pre_tokenizers, trainers

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise InputError(f"vocab size {vocab_size} is too small: bytes and specials need 261")
    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    check_special_tokens(tokenizer, "trained tokenizer")
    return tokenizer


def sample_texts(manifest: dict, max_bytes: int) -> Iterator[str]:
    """Train-split texts up to max_bytes, in a path-hash order so the sample spans packages."""
    from engine.training.corpus import iter_texts

    entries = [e for e in manifest["files"] if e["split"] == "train"]
    entries.sort(key=lambda e: hashlib.sha1(e["path"].encode()).digest())
    total = 0
    for _, text in iter_texts({"files": entries}, "train"):
        if total >= max_bytes:
            return
        total += len(text.encode("utf-8"))
        yield text


def count_tokens(tokenizer: Tokenizer, manifest: dict, batch: int = 256) -> dict[str, int]:
    """Tokens per split of the corpus, for model cards and training budgets."""
    from engine.training.corpus import iter_texts

    counts = {}
    for split in ("train", "heldout"):
        texts = [text for _, text in iter_texts(manifest, split)]
        encoded = (
            tokenizer.encode_batch(texts[i : i + batch]) for i in range(0, len(texts), batch)
        )
        counts[split] = sum(len(e.ids) for chunk in encoded for e in chunk)
    return counts


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus.json"))
    parser.add_argument("--out", type=Path, default=Path("data/tokenizer.json"))
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument(
        "--max-mb", type=float, default=40.0, help="train on a sample of this many MB of text"
    )
    parser.add_argument(
        "--count-only", action="store_true", help="count corpus tokens with --out; no training"
    )


def run(args: argparse.Namespace) -> int:
    from engine.training.corpus import load_manifest

    manifest = load_manifest(args.corpus)
    if not any(entry["split"] == "train" for entry in manifest["files"]):
        raise InputError(f"corpus {args.corpus} has no train files to learn a tokenizer from")
    if args.count_only:
        tokenizer = load_tokenizer(args.out)
        print(json.dumps({"tokenizer": str(args.out), "tokens": count_tokens(tokenizer, manifest)}))
        return 0
    tokenizer = train_tokenizer(sample_texts(manifest, int(args.max_mb * 1e6)), args.vocab_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(args.out))
    indent = len(tokenizer.encode("\n" + " " * 16).ids)
    summary = {"tokenizer": str(args.out), "vocab_size": tokenizer.get_vocab_size()}
    print(json.dumps({**summary, "newline_16_spaces_tokens": indent}))
    return 0
