"""The int8 denoise graph: `denoise-int8.onnx`, its MatMul weights stored as uint8.

A warm denoising step multiplies 16 canvas rows by every weight matrix once, so it reads all
28 MB of fp32 weights to do 0.3 GFLOP: memory traffic, not arithmetic, sets its cost. Dynamic
quantisation (one scale per weight tensor, activations quantised on the fly) reads a quarter
of the bytes. Three steps:

1. ONNX Runtime's basic optimisation folds the `Transpose` in front of each weight (the export
   keeps weights as the checkpoint stores them, `(out, in)`), so the quantiser sees the
   weights as MatMul initializers;
2. `quantize_dynamic` rewrites those MatMuls as MatMulInteger over uint8 weights;
3. the initializers move out of the graph: the ones equal to a checkpoint tensor (the
   embedding) point into the model's shards, the new ones into `denoise-int8.safetensors`,
   so the folder still keeps every weight in safetensors and the graph only structure.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from engine.checkpoint import load_weights
from engine.runtime_onnx import DENOISE_GRAPH, DENOISE_INT8_GRAPH, INT8_WEIGHTS
from engine.training.external_data import file_locations, set_external, tensor_locations

INLINE_BYTES = 1024  # scales and zero points stay in the graph


def export_int8(folder: Path) -> Path:
    """Write the int8 denoise graph and its weights beside the fp32 graphs of `folder`."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(folder)
    folded, target = folder / ".denoise-folded.onnx", folder / DENOISE_INT8_GRAPH
    try:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        ort.InferenceSession(str(folder / DENOISE_GRAPH), options, ["CPUExecutionProvider"])
        with _quiet_quantiser():
            quantize_dynamic(
                folded, target, weight_type=QuantType.QUInt8, op_types_to_quantize=["MatMul"]
            )
    finally:
        folded.unlink(missing_ok=True)
    store_initializers(target, folder)
    return target


@contextlib.contextmanager
def _quiet_quantiser():
    """quantize_dynamic logs a pre-processing hint through the root logger on every call."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def store_initializers(graph_path: Path, folder: Path) -> None:
    """Move the graph's large initializers into safetensors: checkpoint tensors by reference
    into the model's shards, the quantised ones into INT8_WEIGHTS."""
    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import save_file

    graph = onnx.load(str(graph_path))
    checkpoint, shard_locations = load_weights(folder), tensor_locations(folder)
    new: dict[str, np.ndarray] = {}
    for tensor in graph.graph.initializer:
        array = numpy_helper.to_array(tensor)
        name = tensor.name.removeprefix("model.")
        if name in shard_locations and np.array_equal(array, checkpoint.get(name)):
            set_external(tensor, *shard_locations[name])
        elif array.nbytes > INLINE_BYTES:
            new[tensor.name] = np.ascontiguousarray(array)
    save_file(new, str(folder / INT8_WEIGHTS))
    (folder / INT8_WEIGHTS).chmod(0o644)  # save_file creates it owner-only
    locations = file_locations(folder / INT8_WEIGHTS)
    for tensor in graph.graph.initializer:
        if tensor.name in new:
            set_external(tensor, *locations[tensor.name])
    onnx.save(graph, str(graph_path))


def agreement(folder: Path, seed: int = 0) -> float:
    """Share of canvas positions where the int8 and fp32 graphs pick the same token, on a
    random 200-token context, which `diffill export` reports."""
    from engine.runtime_onnx import OnnxRuntime

    fp32, int8 = OnnxRuntime(folder), OnnxRuntime(folder, int8=True)
    config, rng = fp32.config, np.random.default_rng(seed)
    ids = rng.integers(5, config.vocab_size, (1, 200), dtype=np.int64)
    head = config.d_model // config.n_heads
    kv = fp32.encode(ids, np.zeros((config.n_layers, 2, 1, config.n_heads, 0, head), np.float32))
    canvas = rng.integers(3, config.vocab_size, (4, config.canvas_size), dtype=np.int64)
    picks = [rt.denoise(canvas, kv).argmax(-1) for rt in (fp32, int8)]
    return float((picks[0] == picks[1]).mean())
