"""The real commands on family folders: `diffill complete --model`, `diffill doctor`,
`diffill bench family`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_families_infill import EXPAND, chain_rows, hand_built, ids_of, logit_for

from engine.families.spec import DREAM, LLADA
from engine.families.synthetic import DREAMON_SPECIAL, write_folder

DIFFILL = [sys.executable, "-m", "diffill"]


def diffill(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DIFFILL, *args], input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


def test_complete_command_runs_a_dreamon_folder(tmp_path: Path) -> None:
    rows = chain_rows({EXPAND: logit_for(0.8), ids_of("z")[0]: logit_for(0.3)})
    folder = hand_built(tmp_path / "dreamon", DREAM, rows, special=DREAMON_SPECIAL)
    done = diffill(
        "complete",
        "-",
        "--model",
        str(folder),
        "--json",
        "--max-tokens",
        "4",
        "--threshold",
        "1.0",
        stdin=json.dumps({"prefix": "x=", "suffix": "\n"}),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["completion"] == "abc"


def test_doctor_reports_a_family_folder(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "llada", LLADA)
    done = diffill("doctor", "--model", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    section = done.stdout.split("--model:")[1]
    assert "kind           LLaDA" in section
    assert "parameters     0.1M" in section
    assert "stored dtype   F32" in section
    assert "would run on   torch on" in section
    assert "onnxruntime-gpu" in done.stdout and "CUDA GPU" in done.stdout


def test_doctor_names_a_broken_folder(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dream", DREAM)
    sorted(folder.glob("model-*.safetensors"))[0].unlink()
    done = diffill("doctor", "--model", str(folder))
    assert done.returncode == 1
    assert "problem        model folder" in done.stdout
    assert "missing weight shards: model-00001-of-" in done.stdout


@pytest.mark.slow
def test_bench_family_table(tmp_path: Path) -> None:
    done = diffill(
        "bench",
        "family",
        "--shape",
        "tiny",
        "--device",
        "cpu",
        "--context",
        "48",
        "--gap",
        "8",
        "--steps",
        "2",
        "--repeats",
        "1",
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    body = [[cell.strip() for cell in row] for row in rows[1:]]
    assert [(r[0], r[1]) for r in body] == [
        ("diffusion", "on"),
        ("diffusion", "off"),
        ("one token per step", "on"),
        ("one token per step", "off"),
    ]
    steps = {(r[0], r[1]): int(r[3]) for r in body}
    assert steps[("diffusion", "on")] <= 2 < steps[("one token per step", "on")]
    forwards = {(r[0], r[1]): (int(r[6]), int(r[7])) for r in body}
    assert forwards[("diffusion", "off")][1] == 0  # no cache: full forwards only
    assert forwards[("diffusion", "on")][0] == 1  # DualCache: one full forward per block
    assert [r[10].endswith("/8") for r in body] == [True, False, True, False]
    assert "1109 tok/s" in done.stdout


def test_bench_plan_falls_back_to_cpu_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from diffill.evaluation.bench_family import configure, plan_run
    from engine.errors import ModelLoadError

    parser = argparse.ArgumentParser()
    configure(parser)
    cpu = plan_run(parser.parse_args([]), cuda=False)
    assert "No CUDA GPU" in capsys.readouterr().out
    assert (cpu.shape, cpu.device, cpu.dtype, cpu.context) == (
        "open-dcoder-0.5b", "cpu", "float32", 256,
    )  # fmt: skip
    gpu = plan_run(parser.parse_args([]), cuda=True)
    assert (gpu.shape, gpu.device, gpu.dtype, gpu.context, gpu.gap) == (
        "dream-7b", "cuda", "bfloat16", 1024, 32,
    )  # fmt: skip
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        plan_run(parser.parse_args(["--device", "cuda"]), cuda=False)


def test_reading_a_family_folder_needs_no_torch(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dream", DREAM)
    code = (
        "import sys; from pathlib import Path; import diffill.doctor; "
        "from engine.families import is_family_folder; "
        "from engine.families.spec import parse_spec; "
        f"assert is_family_folder(Path({str(folder)!r})); parse_spec(Path({str(folder)!r})); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def sparse_dream_7b(folder: Path) -> Path:
    """A Dream-7B-shaped folder whose bf16 shard is a sparse file: real headers, no data."""
    from engine.families.synthetic import DREAM_7B, config_json, tensor_shapes

    folder.mkdir()
    config = config_json(DREAM, DREAM_7B, {"eos": 151643, "mask": 151666})
    (folder / "config.json").write_text(json.dumps(config))
    header, offset = {}, 0
    for name, shape in sorted(tensor_shapes(DREAM, DREAM_7B).items()):
        size = 2 * int(np.prod(shape))
        header[name] = {
            "dtype": "BF16",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header).encode()
    with open(folder / "model.safetensors", "wb") as shard:
        shard.write(len(encoded).to_bytes(8, "little") + encoded)
        shard.truncate(8 + len(encoded) + offset)
    return folder


def test_doctor_sizes_a_dream_7b_checkpoint(tmp_path: Path) -> None:
    done = diffill("doctor", "--model", str(sparse_dream_7b(tmp_path / "dream-7b")))
    section = done.stdout.split("--model:")[1]
    assert "kind           Dream\n" in section
    assert "parameters     7,615.6M" in section  # Qwen2.5-7B's 7.6B
    assert "stored dtype   BF16 (14.2 GiB)" in section
    assert "14.3 GiB" in section  # bf16 weights + K/V: on this GPU, or what a GPU would need
