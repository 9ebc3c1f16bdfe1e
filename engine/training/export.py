"""`diffill export`: write the serving graphs, `encode.onnx`, `denoise.onnx`, and
`encode_batch.onnx` and `denoise_batch.onnx` (calls of several requests at once, each with its
own cache, that `diffill serve` batches).

Both graphs read their weights from the model folder's safetensors shards through ONNX
external data (offset and length of each tensor inside a shard), so the folder holds the
weights once and the graphs add only their structure (about 0.1 MB each). After writing, the
graphs are run under ONNX Runtime and compared with torch before the command succeeds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.checkpoint import load_weights
from engine.embedded import MAX_CANDIDATES
from engine.errors import ModelLoadError
from engine.runtime_onnx import (
    DENOISE_BATCH_GRAPH,
    DENOISE_GRAPH,
    ENCODE_BATCH_GRAPH,
    ENCODE_GRAPH,
    GRAPHS_FILE,
    INT8_WEIGHTS,
    OnnxRuntime,
    graph_inputs,
    weights_fingerprint,
)
from engine.training.external_data import set_external, tensor_locations
from engine.training.quantize import agreement, export_int8

PARITY_TOLERANCE = 1e-3  # max abs logit difference between ONNX Runtime and torch


def configure(parser: argparse.ArgumentParser) -> None:
    from engine.loading import default_model_path

    parser.add_argument(
        "--model", type=Path, default=None, help=f"model folder (default {default_model_path()})"
    )


def run(args: argparse.Namespace) -> int:
    from engine.loading import default_model_path

    folder = args.model or default_model_path()
    try:
        import torch  # noqa: F401  (export traces the torch model)
    except ImportError:
        raise ModelLoadError("diffill export needs torch: pip install 'diffill[train]'") from None
    paths = export_graphs(folder)
    error, agree = check_parity(folder), agreement(folder)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in paths)
    print(f"wrote {sizes}; max |onnx - torch| logit difference {error:.2e}")
    megabytes = (folder / INT8_WEIGHTS).stat().st_size / 1e6
    print(f"int8 denoise weights {megabytes:.2f} MB; same top token as fp32 at {agree:.1%}")
    return 0


def export_graphs(folder: Path) -> list[Path]:
    """Export the graphs into `folder`, relinked to its safetensors. Returns their paths."""
    import torch

    from engine.runtime_torch import load_model, per_layer

    model = load_model(Path(folder))
    config = model.config
    past = model.encode_context(torch.randint(5, config.vocab_size, (1, 5)), model.empty_cache())
    examples = {
        ENCODE_GRAPH: (torch.randint(5, config.vocab_size, (1, 3)), *per_layer(past)),
        DENOISE_GRAPH: (
            torch.randint(5, config.vocab_size, (2, config.canvas_size)),
            *per_layer(past),
        ),
        ENCODE_BATCH_GRAPH: (
            torch.randint(5, config.vocab_size, (2, 3)),
            torch.tensor([5, 3]),
            *per_layer(past.expand(-1, -1, 2, -1, -1, -1).contiguous()),
        ),
        DENOISE_BATCH_GRAPH: (
            torch.randint(5, config.vocab_size, (2, config.canvas_size)),
            torch.tensor([5, 3]),
            *per_layer(past.expand(-1, -1, 2, -1, -1, -1).contiguous()),
        ),
    }
    paths = []
    for name, module in _graph_modules(model).items():
        paths.append(Path(folder) / name)
        _export(module, examples[name], paths[-1])
        relink_to_safetensors(paths[-1], Path(folder))
    record = {"weights_fingerprint": weights_fingerprint(folder), "graphs": list(examples)}
    (Path(folder) / GRAPHS_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return [*paths, export_int8(Path(folder))]


def _graph_modules(model) -> dict:
    """The exported entry points as modules, keyed by graph file name. All take the
    cache per layer; see engine/inference.py."""
    import torch

    from engine.inference import denoise_shared_cache, encode_new, own_caches

    class EncodeGraph(torch.nn.Module):
        first_input, output = "ids", "new_kv"

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, keys: list, values: list) -> torch.Tensor:
            return encode_new(self.model, ids, keys, values)

    class DenoiseGraph(EncodeGraph):
        first_input, output = "canvas", "logits"

        def forward(self, canvas: torch.Tensor, keys: list, values: list) -> torch.Tensor:
            return denoise_shared_cache(self.model, canvas, keys, values)

    class EncodeBatchGraph(EncodeGraph):
        lengths, canvas = True, False

        def forward(self, ids, lengths, keys: list, values: list) -> torch.Tensor:
            return own_caches(self.model, ids, lengths, keys, values, self.canvas)

    class DenoiseBatchGraph(EncodeBatchGraph):
        first_input, output, canvas = "canvas", "logits", True

        def forward(self, canvas, lengths, keys: list, values: list) -> torch.Tensor:
            return own_caches(self.model, canvas, lengths, keys, values, self.canvas)

    return {
        ENCODE_GRAPH: EncodeGraph(),
        DENOISE_GRAPH: DenoiseGraph(),
        ENCODE_BATCH_GRAPH: EncodeBatchGraph(),
        DENOISE_BATCH_GRAPH: DenoiseBatchGraph(),
    }


def _export(module, example: tuple, path: Path) -> None:
    """One dynamo export with dynamic lengths; optimize=False keeps weights untransposed and
    named after their parameters, so they can point into the safetensors."""
    import torch
    from torch.export import Dim

    config = module.model.config
    past = Dim("past", max=config.max_positions)
    rows = Dim("candidates", min=1, max=MAX_CANDIDATES)
    batched = getattr(module, "lengths", False)
    first = {
        "ids": {1: Dim("new", min=1, max=config.max_positions), **({0: rows} if batched else {})},
        "canvas": {0: rows},
    }[module.first_input]
    layers = ({0: rows, 2: past} if batched else {2: past},) * config.n_layers  # tuples
    shapes = {module.first_input: first, **({"lengths": {0: rows}} if batched else {})}
    shapes |= {"keys": layers, "values": layers}
    with _quiet():
        torch.onnx.export(
            module.eval(),
            example,
            str(path),
            dynamo=True,
            optimize=False,
            input_names=graph_inputs(module.first_input, config.n_layers, batched),
            output_names=[module.output],
            dynamic_shapes=shapes,
            verbose=False,
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints progress and warns about packages serving never uses."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def relink_to_safetensors(graph_path: Path, folder: Path) -> None:
    """Replace every initializer that is a checkpoint tensor by a reference into its shard,
    and drop the per-node export metadata nothing at serving time reads."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(graph_path))
    locations = tensor_locations(folder)
    weights = load_weights(folder)
    for tensor in graph.graph.initializer:
        name = tensor.name.removeprefix("model.")
        if name in weights and name not in locations:
            raise ModelLoadError(f"export needs float32 weights; {name} is {weights[name].dtype}")
        if name not in locations:
            continue
        if not np.array_equal(numpy_helper.to_array(tensor), weights[name]):
            raise ModelLoadError(f"exported initializer {tensor.name} differs from the checkpoint")
        shard, offset, length = locations[name]
        set_external(tensor, shard, offset, length)
    for node in graph.graph.node:
        del node.metadata_props[:]  # the exporter's per-node stack traces: 80% of the file
    onnx.save(graph, str(graph_path))
    for stale in graph_path.parent.glob(graph_path.name + ".data"):
        stale.unlink()


def check_parity(folder: Path, seed: int = 0) -> float:
    """Max abs difference between ONNX Runtime and the reference torch model (encode_context,
    then denoise on an explicitly broadcast cache) on random context and canvas."""
    import torch

    from engine.runtime_torch import load_model

    onnx_rt, model = OnnxRuntime(folder), load_model(Path(folder))
    config, rng = onnx_rt.config, np.random.default_rng(seed)
    ids = rng.integers(5, config.vocab_size, (1, 11), dtype=np.int64)
    canvas = rng.integers(3, config.vocab_size, (2, config.canvas_size), dtype=np.int64)
    with torch.inference_mode():
        kv_torch = model.encode_context(torch.from_numpy(ids), model.empty_cache())
        cache = kv_torch.expand(-1, -1, 2, -1, -1, -1)  # (L, 2, N, H, P, D)
        logits = model.denoise(torch.from_numpy(canvas), cache).numpy()
    kv_onnx = onnx_rt.encode(ids, model.empty_cache().numpy())
    error = float(np.abs(onnx_rt.denoise(canvas, kv_onnx) - logits).max())
    error = max(error, _batch_parity(onnx_rt, kv_onnx, canvas))
    if error > PARITY_TOLERANCE or np.abs(kv_onnx - kv_torch.numpy()).max() > PARITY_TOLERANCE:
        raise ModelLoadError(f"exported graphs disagree with torch by {error:.2e} in {folder}")
    return error


def _batch_parity(onnx_rt: OnnxRuntime, kv: np.ndarray, canvas: np.ndarray) -> float:
    """Max abs difference between batched calls over two requests of different context
    lengths (the shorter cache and chunk padded) and each request's own unbatched calls."""
    short = np.ascontiguousarray(kv[:, :, :, :, :6])  # (L, 2, 1, H, 6, D)
    padded = np.zeros_like(kv)
    padded[:, :, :, :, :6] = short
    batch = np.concatenate((kv, padded), axis=2)  # (L, 2, 2, H, P, D)
    lengths = np.array([kv.shape[4], 6])
    logits = onnx_rt.denoise_batch(canvas, lengths, batch)
    alone = [onnx_rt.denoise(canvas[i : i + 1], c)[0] for i, c in enumerate((kv, short))]
    error = float(np.abs(logits - np.stack(alone)).max())
    ids = canvas[:, :5].copy()  # row 0: 5 new tokens; row 1: 3, right-padded
    new = onnx_rt.encode_batch(ids, lengths, batch)  # (L, 2, 2, H, 5, D)
    for row, (cache, t) in enumerate(((kv, 5), (short, 3))):
        own = onnx_rt.encode(ids[row : row + 1, :t], cache)[:, :, :, :, cache.shape[4] :]
        error = max(error, float(np.abs(new[:, :, row : row + 1, :, :t] - own).max()))
    return error
