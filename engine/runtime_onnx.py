"""The ONNX Runtime runtime: the serving path, with no torch anywhere.

A model folder holds the graphs written by `diffill export`: `encode.onnx` (context ids and
past K/V -> the new tokens' K/V) and `denoise.onnx` (canvas ids and K/V -> logits), both
taking the cache per layer (engine/inference.py), and `encode_batch.onnx` and
`denoise_batch.onnx` (context chunks or canvases of different requests, each with its own
padded cache; `diffill serve` batches with them, and a folder without them serves one
request per model call). Their weights are not in
the graphs: each initializer is ONNX external data pointing into the safetensors shards, so
the folder stores the weights once. A fingerprint of the shard headers, written beside the
graphs at export (graphs.json), catches graphs left stale by new weights before ONNX Runtime
would read the wrong bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from engine.checkpoint import load_config, safetensors_header, weight_files
from engine.config import ModelConfig
from engine.errors import ModelLoadError

ENCODE_GRAPH = "encode.onnx"
DENOISE_GRAPH = "denoise.onnx"
DENOISE_INT8_GRAPH = "denoise-int8.onnx"  # uint8 MatMul weights (engine/training/quantize.py)
INT8_WEIGHTS = "denoise-int8.safetensors"
ENCODE_BATCH_GRAPH = "encode_batch.onnx"
DENOISE_BATCH_GRAPH = "denoise_batch.onnx"
GRAPHS_FILE = "graphs.json"  # {"weights_fingerprint": ...} written by `diffill export`


def graph_inputs(first: str, layers: int, lengths: bool = False) -> list[str]:
    """A graph's inputs: ids or canvas, the batched graph's row lengths, then each layer's
    keys, then its values, so the runtime feeds views of the cache instead of the graph
    slicing (copying) it on every call."""
    keys = [f"key{i}" for i in range(layers)]
    values = [f"value{i}" for i in range(layers)]
    return [first, *(["lengths"] if lengths else []), *keys, *values]


def graphs_exist(folder: Path) -> bool:
    return all((Path(folder) / name).exists() for name in (ENCODE_GRAPH, DENOISE_GRAPH))


def int8_helps(folder: Path, device: str | None) -> bool:
    """The int8 denoise graph is exported and the steps run on the CPU, where a warm step is
    bound by reading the weights (BENCHMARKS.md: `diffill bench engine`); the fixed eval set
    scores it as fp32 within noise."""
    cpu_only = providers_for(device) == ["CPUExecutionProvider"]
    return cpu_only and (Path(folder) / DENOISE_INT8_GRAPH).exists()


def weights_fingerprint(folder: Path) -> str:
    """Hash of every shard's name, size and header: changes whenever any offset could."""
    digest = hashlib.sha256()
    for path in weight_files(Path(folder)):
        _, header = safetensors_header(path)
        digest.update(f"{path.name}:{path.stat().st_size}:".encode() + header)
    return digest.hexdigest()


def providers_for(device: str | None) -> list[str]:
    """CUDA when asked for (or by default when onnxruntime-gpu sees a GPU), else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ModelLoadError("device 'cuda' asked for but onnxruntime has no CUDA provider")
    if device in (None, "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntime:
    """Both graphs of a folder; `int8` swaps in the denoise graph with uint8 weights (the
    encode graph stays fp32: a cold context is compute-bound, a warm step memory-bound)."""

    def __init__(
        self, folder: Path, device: str | None = None, threads: int = 2, int8: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.name = "onnx-int8" if int8 else "onnx"
        self.config: ModelConfig = load_config(self.folder)
        check_graphs_current(self.folder)
        denoise = self.folder / (DENOISE_INT8_GRAPH if int8 else DENOISE_GRAPH)
        if not denoise.exists():
            raise ModelLoadError(
                f"no {denoise.name} in {self.folder}; run `diffill export --model {self.folder}`"
            )
        providers = providers_for(device)
        self._encode = _open_session(self.folder / ENCODE_GRAPH, providers, threads)
        self._denoise = _open_session(denoise, providers, threads)
        self.providers = self._denoise.get_providers()
        self._encode_inputs = graph_inputs("ids", self.config.n_layers)
        self._denoise_inputs = graph_inputs("canvas", self.config.n_layers)
        batched = [self.folder / name for name in (ENCODE_BATCH_GRAPH, DENOISE_BATCH_GRAPH)]
        self.batches = all(path.exists() for path in batched)  # encode_ and denoise_batch run
        self._batch = [_open_session(p, providers, threads) for p in batched if self.batches]

    def encode(self, ids: np.ndarray, past: np.ndarray) -> np.ndarray:
        past = np.ascontiguousarray(past)
        new = self._encode.run(None, self._feeds(self._encode_inputs, ids, past))[0]
        return np.concatenate((past, new), axis=4)  # (L, 2, 1, H, P+T, D)

    def denoise(self, canvas: np.ndarray, kv: np.ndarray) -> np.ndarray:
        kv = np.ascontiguousarray(kv)
        return self._denoise.run(None, self._feeds(self._denoise_inputs, canvas, kv))[0]

    def encode_batch(self, ids: np.ndarray, lengths: np.ndarray, kv: np.ndarray) -> np.ndarray:
        """ids (N, T) after kv (L, 2, N, H, P, D), row n's first lengths[n] positions real
        -> the new K/V (L, 2, N, H, T, D)."""
        return self._run_batch(0, "ids", ids, lengths, kv)

    def denoise_batch(self, canvas: np.ndarray, lengths: np.ndarray, kv: np.ndarray) -> np.ndarray:
        """canvas (N, C) against kv (L, 2, N, H, P, D), row n's first lengths[n] positions
        real -> logits (N, C, V)."""
        return self._run_batch(1, "canvas", canvas, lengths, kv)

    def _run_batch(self, graph: int, first_name: str, first, lengths, kv) -> np.ndarray:
        if not self.batches:
            raise ModelLoadError(f"no batched graphs in {self.folder}; run `diffill export`")
        names = graph_inputs(first_name, self.config.n_layers)
        feeds = self._feeds(names, first, np.ascontiguousarray(kv))
        feeds["lengths"] = lengths.astype(np.int64, copy=False)
        return self._batch[graph].run(None, feeds)[0]

    @staticmethod
    def _feeds(names: list[str], first: np.ndarray, kv: np.ndarray) -> dict[str, np.ndarray]:
        """Inputs for a graph: kv is C-contiguous, so each kv[i, j] is a view, not a copy."""
        caches = [kv[i, j] for j in (0, 1) for i in range(kv.shape[0])]  # keys, then values
        arrays = [first.astype(np.int64, copy=False), *caches]
        return dict(zip(names, arrays, strict=True))


def check_graphs_current(folder: Path) -> None:
    """Both graphs exist and were exported for the weights now in the folder."""
    export = f"run `diffill export --model {folder}`"
    for name in (ENCODE_GRAPH, DENOISE_GRAPH, GRAPHS_FILE):
        if not (folder / name).exists():
            raise ModelLoadError(f"no {name} in {folder}; {export}")
    try:
        stored = json.loads((folder / GRAPHS_FILE).read_text())["weights_fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{folder / GRAPHS_FILE} is unreadable ({exc}); {export}") from None
    if stored != weights_fingerprint(folder):
        raise ModelLoadError(
            f"the ONNX graphs in {folder} were exported for other weights; {export}"
        )


def _open_session(path: Path, providers: list[str], threads: int):
    """An InferenceSession for one graph of a checked folder."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False  # the arena keeps peak attention buffers for life
    options.enable_mem_pattern = False  # a pattern per input shape: every context length adds one
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle threads sleep instead of spinning: the editor shares these cores, and on a busy
    # machine spinning made a denoise step slower (median 11.8 ms against 7.2 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own types for corrupt or mismatched files
        detail = " ".join(str(exc).split())[:200]
        raise ModelLoadError(f"cannot load ONNX graph {path}: {detail}") from None
    return session
