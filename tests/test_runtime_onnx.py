"""The exported graphs: parity with torch, weights shared with the safetensors, stale and
missing graphs reported by name."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_model import copy_folder, shared_folder

from engine.checkpoint import load_weights, save_weights
from engine.errors import ModelLoadError
from engine.loading import open_completer
from engine.runtime_onnx import (
    DENOISE_GRAPH,
    DENOISE_INT8_GRAPH,
    ENCODE_GRAPH,
    INT8_WEIGHTS,
    OnnxRuntime,
)
from engine.runtime_torch import TorchRuntime


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return shared_folder(tmp_path_factory, "random", train_steps=0)


def test_onnx_matches_torch_for_context_steps_and_canvas_batches(folder) -> None:
    onnx_rt, torch_rt = OnnxRuntime(folder), TorchRuntime.from_folder(folder)
    c, rng = onnx_rt.config, np.random.default_rng(1)
    kv = {
        rt.name: np.zeros((c.n_layers, 2, 1, c.n_heads, 0, c.head_dim), np.float32)
        for rt in (onnx_rt, torch_rt)
    }
    for length in (1, 37, 5):  # zero-length past first, then incremental encodes
        ids = rng.integers(5, c.vocab_size, (1, length), dtype=np.int64)
        for rt in (onnx_rt, torch_rt):
            kv[rt.name] = rt.encode(ids, kv[rt.name])
        np.testing.assert_allclose(kv["onnx"], kv["torch"], atol=1e-4)
    canvas = rng.integers(3, c.vocab_size, (3, c.canvas_size), dtype=np.int64)
    logits = onnx_rt.denoise(canvas, kv["onnx"])
    assert logits.shape == (3, c.canvas_size, c.vocab_size)
    np.testing.assert_allclose(logits, torch_rt.denoise(canvas, kv["torch"]), atol=1e-4)
    assert not np.allclose(logits[0], logits[1])  # rows really are different canvases


def test_copy_free_passes_match_the_reference_model(folder) -> None:
    """engine/inference.py (what the graphs are traced from) equals engine/model.py."""
    import torch

    runtime = TorchRuntime.from_folder(folder)
    model, c = runtime.model, runtime.config
    first, then = torch.randint(5, c.vocab_size, (1, 23)), torch.randint(5, c.vocab_size, (1, 4))
    canvas = torch.randint(3, c.vocab_size, (4, c.canvas_size))
    with torch.no_grad():
        kv = model.encode_context(then, model.encode_context(first, model.empty_cache()))
        reference = model.denoise(canvas, kv.expand(-1, -1, 4, -1, -1, -1))
    ours = runtime.encode(then.numpy(), runtime.encode(first.numpy(), model.empty_cache().numpy()))
    np.testing.assert_allclose(ours, kv.numpy(), atol=1e-5)
    logits = runtime.denoise(canvas.numpy(), ours)
    np.testing.assert_allclose(logits, reference.numpy(), atol=1e-5)


def test_graphs_point_into_the_safetensors_instead_of_copying_weights(folder) -> None:
    import onnx

    for name in (ENCODE_GRAPH, DENOISE_GRAPH):
        graph = onnx.load(str(folder / name), load_external_data=False)
        external = {
            t.name.removeprefix("model."): {e.key: e.value for e in t.external_data}
            for t in graph.graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL
        }
        assert "embed.weight" in external
        assert all(e["location"].endswith(".safetensors") for e in external.values())
        assert sum(len(t.raw_data) for t in graph.graph.initializer) == 0  # nothing copied in
        assert (folder / name).stat().st_size < 300_000  # structure only


def test_new_weights_make_the_graphs_stale(folder, tmp_path) -> None:
    copy = copy_folder(folder, tmp_path / "model")
    weights = load_weights(copy)
    weights["embed.weight"] = weights["embed.weight"][:, ::-1].copy()
    save_weights(weights, copy, max_shard_bytes=300_000)
    with pytest.raises(ModelLoadError, match="diffill export"):
        OnnxRuntime(copy)


def test_missing_graph_names_the_export_command(folder, tmp_path) -> None:
    copy = copy_folder(folder, tmp_path / "model")
    (copy / DENOISE_GRAPH).unlink()
    with pytest.raises(ModelLoadError, match=r"denoise\.onnx.*diffill export"):
        open_completer(copy, runtime="onnx")
    assert open_completer(copy, runtime="auto").describe()["runtime"] == "torch"  # fallback


def test_corrupt_graph_is_a_load_error(folder, tmp_path) -> None:
    copy = copy_folder(folder, tmp_path / "model")
    (copy / ENCODE_GRAPH).write_bytes(b"not a graph")
    with pytest.raises(ModelLoadError, match=r"encode\.onnx"):
        OnnxRuntime(copy)


def test_the_int8_graph_quantises_the_weight_matmuls_and_keeps_weights_in_safetensors(
    folder,
) -> None:
    import onnx

    graph = onnx.load(str(folder / DENOISE_INT8_GRAPH), load_external_data=False)
    ops = [node.op_type for node in graph.graph.node]
    layers = OnnxRuntime(folder).config.n_layers
    assert ops.count("MatMulInteger") >= layers + 1  # at least one per layer, and the head
    locations = {
        e.value for t in graph.graph.initializer for e in t.external_data if e.key == "location"
    }
    assert INT8_WEIGHTS in locations  # the quantised weights
    assert any(name.startswith("model") for name in locations)  # the embedding, shared
    assert all(len(t.raw_data) <= 1024 for t in graph.graph.initializer)  # scales only inline
    assert {p.suffix for p in folder.iterdir()} <= {".json", ".safetensors", ".onnx"}


def test_the_int8_runtime_completes_and_mostly_agrees_with_fp32(folder) -> None:
    from engine.completer import CompletionRequest
    from engine.training.quantize import agreement

    completer = open_completer(folder, runtime="onnx-int8")
    assert completer.describe()["runtime"] == "onnx-int8"
    result = completer.complete(CompletionRequest("def add(a, b):\n    return ", "\n"))
    assert isinstance(result.text, str) and result.candidates
    assert agreement(folder) >= 0.8


def test_a_folder_without_the_int8_graph_names_the_export_command(folder, tmp_path) -> None:
    copy = copy_folder(folder, tmp_path / "model")
    (copy / DENOISE_INT8_GRAPH).unlink()
    with pytest.raises(ModelLoadError, match=r"denoise-int8\.onnx.*diffill export"):
        open_completer(copy, runtime="onnx-int8")
    assert open_completer(copy, runtime="auto").describe()["runtime"] == "onnx"  # fp32 steps
