"""ONNX initializers as references into safetensors files.

safetensors stores each tensor's little-endian bytes raw after its JSON header, so an ONNX
initializer can name a file, an offset and a length instead of holding a copy: a model folder
keeps every weight once, in safetensors, and its graphs only structure.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.checkpoint import safetensors_header, weight_files

Location = tuple[str, int, int]  # (file name in the folder, absolute byte offset, byte length)


def set_external(tensor, location: str, offset: int, length: int) -> None:
    """Point an onnx TensorProto at bytes of a file beside the graph."""
    from onnx import TensorProto

    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, str(value)


def file_locations(path: Path, dtype: str | None = None) -> dict[str, Location]:
    """Tensor name -> location of every tensor of one safetensors file (of one dtype)."""
    data_start, header = safetensors_header(path)
    locations = {}
    for name, info in json.loads(header).items():
        if name == "__metadata__" or (dtype is not None and info["dtype"] != dtype):
            continue
        begin, end = info["data_offsets"]
        locations[name] = (path.name, data_start + begin, end - begin)
    return locations


def tensor_locations(folder: Path) -> dict[str, Location]:
    """The float32 tensors of a model folder's shards: the only ones the graphs may share."""
    locations: dict[str, Location] = {}
    for path in weight_files(folder):
        locations.update(file_locations(path, "F32"))
    return locations
