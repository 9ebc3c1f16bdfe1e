"""The training token stream: FIM examples cut on the fly from the corpus manifest's files.

Examples are built from text at training time (a few spans per file, files in a shuffled
order, forever), so no pre-tokenized copy of the corpus is needed and every epoch cuts new
spans. The order of each epoch and the spans of each file are seeded by (seed, epoch, file),
so a position (epoch, files done) is enough to resume the stream where it stopped. With
`workers > 0` a torch DataLoader builds them in parallel processes, worker w taking every
W-th file; the position a batch reports is then that worker's, so a resume is approximate.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from engine.config import TrainConfig
from engine.errors import InputError
from engine.training.fim import examples_from_text

Position = tuple[int, int]  # (epoch, files of that epoch's order already read)


class ExampleStream(IterableDataset):
    """Endless (ids, roles, position) triples of length S from one split of the manifest."""

    def __init__(
        self,
        paths: list[str],
        tokenizer_path: Path,
        per_file: int,
        seed: int,
        start: Position = (0, 0),
        **layout: int,
    ) -> None:
        self.paths, self.tokenizer_path, self.per_file = paths, tokenizer_path, per_file
        self.seed, self.start, self.layout = seed, start, layout

    def __iter__(self):
        from engine.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(self.tokenizer_path)
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)

        def encode(texts: list[str]) -> list[list[int]]:
            return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

        epoch, done = self.start
        while True:
            produced = 0
            order = random.Random(f"{self.seed}:{epoch}").sample(self.paths, len(self.paths))
            for index in range(done, len(order)):
                if index % workers != worker_id:
                    continue
                rng = random.Random(f"{self.seed}:{epoch}:{index}")
                text = _read(order[index])
                for ex in examples_from_text(text, encode, rng, self.per_file, **self.layout):
                    produced += 1
                    yield ex.ids, ex.roles, (epoch, index + 1)
            if not produced and done == 0:  # a whole pass and nothing fits: say so, not spin
                raise InputError(f"no FIM example fits {self.layout}; raise seq_len")
            epoch, done = epoch + 1, 0


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
    start: Position = (0, 0),
) -> DataLoader:
    """A DataLoader of (ids (N, S) int64, roles (N, S) uint8, position after the batch)
    batches from one split, starting at `start`."""
    paths = split_paths(manifest, split)
    if not paths:
        raise InputError(f"the corpus manifest has no {split!r} files to train on")
    stream = ExampleStream(
        paths,
        tokenizer_path,
        settings.examples_per_file,
        seed,
        start,
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


def _collate(
    items: list[tuple[np.ndarray, np.ndarray, Position]],
) -> tuple[torch.Tensor, torch.Tensor, Position]:
    ids = torch.from_numpy(np.stack([ids for ids, _, _ in items]))
    roles = torch.from_numpy(np.stack([roles for _, roles, _ in items]))
    return ids, roles, items[-1][2]
