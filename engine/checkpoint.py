"""Model folders on disk: `config.json`, safetensors weights (one file, or shards of at most
16 MB with a Hugging Face style `model.safetensors.index.json`) and `tokenizer.json`.

Reading uses safetensors' numpy loader, so this module works without torch.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from engine.config import ModelConfig
from engine.errors import ModelLoadError

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
MAX_SHARD_BYTES = 16 * 1000 * 1000  # the device tool brings back files of at most 16 MB


def save_weights(
    weights: dict[str, np.ndarray], folder: Path, max_shard_bytes: int = MAX_SHARD_BYTES
) -> list[Path]:
    """Write weights as shards no larger than max_shard_bytes, plus the index. Returns the files."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("model*.safetensors"), folder / INDEX_FILE]:
        stale.unlink(missing_ok=True)
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name in sorted(weights):
        nbytes = weights[name].nbytes + 1024  # header room per tensor
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = np.ascontiguousarray(weights[name])
        size += nbytes
    files = [
        folder / f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))
    ]
    weight_map = {}
    for path, shard in zip(files, shards, strict=True):
        save_file(shard, str(path))
        weight_map.update(dict.fromkeys(shard, path.name))
    index = {
        "metadata": {"total_size": sum(w.nbytes for w in weights.values())},
        "weight_map": weight_map,
    }
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return files


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a model folder, checked to exist."""
    index_path, single = folder / INDEX_FILE, folder / SINGLE_FILE
    if index_path.exists():
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{index_path} is not a valid safetensors index: {exc}") from None
        files = [folder / name for name in sorted(set(weight_map.values()))]
    elif single.exists():
        files = [single]
    else:
        raise ModelLoadError(f"no {SINGLE_FILE} or {INDEX_FILE} in model folder {folder}")
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise ModelLoadError(
            f"model folder {folder} is missing weight shards: {', '.join(missing)}"
        )
    return files


def load_weights(folder: Path) -> dict[str, np.ndarray]:
    """All tensors of a model folder as numpy arrays, with a clear error for corrupt files."""
    from safetensors.numpy import load_file

    weights: dict[str, np.ndarray] = {}
    for path in weight_files(Path(folder)):
        try:
            weights.update(load_file(str(path)))
        except Exception as exc:  # safetensors raises several types for truncated/garbage files
            raise ModelLoadError(f"cannot read weights {path}: {exc}") from None
    return weights


def load_config(folder: Path) -> ModelConfig:
    path = Path(folder) / CONFIG_FILE
    try:
        return ModelConfig.from_json(path)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        raise ModelLoadError(str(exc)) from None


def safetensors_header(path: Path) -> tuple[int, bytes]:
    """(size of the 8-byte length plus the JSON header, the header bytes) of a shard,
    checked to describe exactly the bytes the file holds."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            start = handle.read(8)
            length = struct.unpack("<Q", start)[0] if len(start) == 8 else size
            header = handle.read(min(length, size))
        tensors = json.loads(header)
        end = max(
            (t["data_offsets"][1] for k, t in tensors.items() if k != "__metadata__"), default=0
        )
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise ModelLoadError(
            f"safetensors file {path} is truncated or corrupt (bad header)"
        ) from None
    if 8 + length + end != size:
        raise ModelLoadError(f"safetensors file {path} is truncated or corrupt ({size} bytes)")
    return 8 + length, header


def stored_tensors(folder: Path) -> dict[str, tuple[str, list[int]]]:
    """name -> (dtype, shape) from the shard headers, without reading any weights."""
    tensors = {}
    for path in weight_files(folder):
        for name, info in json.loads(safetensors_header(path)[1]).items():
            if name != "__metadata__":
                tensors[name] = (info["dtype"], info["shape"])
    return tensors


def parameter_count(folder: Path) -> int:
    """Parameters stored in the folder's safetensors, read from the shard headers."""
    return sum(math.prod(shape) for _, shape in stored_tensors(folder).values())
