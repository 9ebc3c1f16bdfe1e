"""The training token stream: FIM examples cut on the fly from the corpus manifest's files.

Examples are built from text at training time (a few spans per file, files in a shuffled
order, forever), so no pre-tokenized copy of the corpus is needed and every epoch cuts new
spans. With `workers > 0` a torch DataLoader builds them in parallel processes.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from engine.config import TrainConfig
from engine.errors import InputError
from engine.fim import examples_from_text


class ExampleStream(IterableDataset):
    """Endless (ids, roles) pairs of length S from one split of the manifest."""

    def __init__(
        self, paths: list[str], tokenizer_path: Path, per_file: int, seed: int, **layout: int
    ) -> None:
        self.paths, self.tokenizer_path, self.per_file = paths, tokenizer_path, per_file
        self.seed, self.layout = seed, layout

    def __iter__(self):
        from engine.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(self.tokenizer_path)
        worker = get_worker_info()
        rng = random.Random(f"{self.seed}:{worker.id if worker else 0}")

        def encode(texts: list[str]) -> list[list[int]]:
            return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

        while True:
            produced = 0
            for path in rng.sample(self.paths, len(self.paths)):
                text = _read(path)
                for ex in examples_from_text(text, encode, rng, self.per_file, **self.layout):
                    produced += 1
                    yield ex.ids, ex.roles
            if not produced:  # a whole pass and nothing fits: say so rather than spin
                raise InputError(f"no FIM example fits {self.layout}; raise seq_len")


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # the machine changed since `diffill corpus`
        return ""


def split_paths(manifest: dict, split: str) -> list[str]:
    return [entry["path"] for entry in manifest["files"] if entry["split"] == split]


def batches(
    manifest: dict,
    split: str,
    tokenizer_path: Path,
    settings: TrainConfig,
    canvas_size: int,
    seed: int,
) -> DataLoader:
    """A DataLoader of (ids (N, S) int64, roles (N, S) uint8) batches from one split."""
    paths = split_paths(manifest, split)
    if not paths:
        raise InputError(f"the corpus manifest has no {split!r} files to train on")
    stream = ExampleStream(
        paths,
        tokenizer_path,
        settings.examples_per_file,
        seed,
        seq_len=settings.seq_len,
        canvas_size=canvas_size,
        max_middle_tokens=settings.max_middle_tokens,
    )
    return DataLoader(
        stream,
        batch_size=settings.batch_size,
        num_workers=settings.workers,
        collate_fn=_collate,
        persistent_workers=settings.workers > 0,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=4 if settings.workers > 0 else None,
    )


def _collate(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.from_numpy(np.stack([ids for ids, _ in items]))
    roles = torch.from_numpy(np.stack([roles for _, roles in items]))
    return ids, roles
