"""The long-lived training run on the tiny model: started from shipped weights, resumed with
its data position and EMA, checkpointed atomically, on time, on SIGTERM and before SIGKILL,
detached at the lowest priority, paused by benchmarks, and snapshotted for shipping."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_model import build_model_folder

from diffill.cli import main
from engine.checkpoint import load_weights
from engine.config import train_preset
from engine.training import background
from engine.training.checkpoint import (
    EMA_FILE,
    LINEAGE_FILE,
    STATE_FILE,
    checkpoint_dir,
)
from engine.training.train import learning_rate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 'shipped' model folder whose lineage says it has seen 1,000 tokens, and a
    corpus manifest of a few real files beside it."""
    folder = build_model_folder(tmp_path_factory.mktemp("shipped") / "model")
    (folder / LINEAGE_FILE).write_text(json.dumps({"tokens": 1000}))
    write_corpus(tmp_path_factory.mktemp("files"), folder.parent / "corpus.json")
    return folder


def write_corpus(files: Path, manifest: Path) -> None:
    """A manifest over a few real engine files copied into `files`, 40% held out."""
    for name in (
        "training/fim.py",
        "model.py",
        "sampler.py",
        "checkpoint.py",
        "training/corpus.py",
    ):
        shutil.copy(REPO / "engine" / name, files / Path(name).name)
    argv = ["corpus", "--root", str(files), "--out", str(manifest), "--heldout-fraction", "0.4"]
    assert main(argv) == 0


def continual_argv(shipped: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--continual",
        "--run-dir",
        str(run_dir),
        "--init-from",
        str(shipped),
        "--corpus",
        str(shipped.parent / "corpus.json"),
        "--seq-len",
        "64",
        "--batch-size",
        "2",
        "--max-middle-tokens",
        "24",
        "--warmup-steps",
        "2",
        "--eval-batches",
        "1",
        "--threads",
        "1",
        *extra,
    ]


def saved_state(run_dir: Path) -> dict:
    return json.loads((checkpoint_dir(run_dir) / STATE_FILE).read_text())


def test_a_new_run_starts_from_the_shipped_weights_and_counts_their_tokens(
    shipped: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    assert main(continual_argv(shipped, run_dir, "--max-steps", "1", "--lr", "1e-9")) == 0
    state = saved_state(run_dir)
    assert state["step"] == 1 and state["tokens"] == 1000 + 2 * 64
    before, after = load_weights(shipped), load_weights(checkpoint_dir(run_dir))
    for name, tensor in before.items():  # one step at lr 1e-9: still the shipped weights
        np.testing.assert_allclose(after[name], tensor, atol=1e-6)


def test_resume_keeps_data_position_ema_and_noise_state(shipped: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(continual_argv(shipped, run_dir, "--max-steps", "3")) == 0
    first = saved_state(run_dir)
    ema_first = load_weights_file(checkpoint_dir(run_dir) / EMA_FILE)
    assert main(continual_argv(shipped, run_dir, "--max-steps", "6")) == 0
    second = saved_state(run_dir)
    assert second["step"] == 6 and second["tokens"] == first["tokens"] + 3 * 2 * 64
    assert tuple(second["data"]) > tuple(first["data"])  # the stream went on, not back
    ema_second = load_weights_file(checkpoint_dir(run_dir) / EMA_FILE)
    raw = load_weights(checkpoint_dir(run_dir))
    name = "tok_embedding.weight" if "tok_embedding.weight" in raw else sorted(raw)[0]
    assert not np.array_equal(ema_second[name], ema_first[name])  # the EMA moved on
    assert not np.array_equal(ema_second[name], raw[name])  # and lags the raw weights
    records = read_log(run_dir)
    assert [r["settings"]["schedule"] for r in records if "settings" in r] == ["constant"] * 2


def load_weights_file(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_a_torn_checkpoint_swap_resumes_from_the_old_one(shipped: Path, tmp_path: Path) -> None:
    """A kill between the swap's two renames leaves checkpoint.old/ and checkpoint.tmp/."""
    run_dir = tmp_path / "run"
    assert main(continual_argv(shipped, run_dir, "--max-steps", "2")) == 0
    (run_dir / "checkpoint").rename(run_dir / "checkpoint.old")
    (run_dir / "checkpoint.tmp").mkdir()
    (run_dir / "checkpoint.tmp" / "model-00001-of-00002.safetensors").write_bytes(b"half")
    assert checkpoint_dir(run_dir).name == "checkpoint.old"
    assert main(continual_argv(shipped, run_dir, "--max-steps", "3")) == 0
    assert saved_state(run_dir)["step"] == 3
    assert not (run_dir / "checkpoint.old").exists() and not (run_dir / "checkpoint.tmp").exists()


def test_the_constant_schedule_never_decays() -> None:
    settings = train_preset("continual", warmup_steps=10, lr=1e-3)
    assert learning_rate(4, 0.0, settings) == pytest.approx(5e-4)
    assert {
        learning_rate(step, p, settings) for step, p in [(10, 0), (10**6, 0.5), (10**9, 1)]
    } == {1e-3}


def test_snapshot_writes_the_lower_loss_weights_as_a_model_folder_that_serves(
    shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from engine.completer import CompletionRequest
    from engine.loading import open_completer

    run_dir, out = tmp_path / "run", tmp_path / "leg"
    assert main(continual_argv(shipped, run_dir, "--max-steps", "3")) == 0
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run_dir), "--snapshot", str(out)]) == 0
    lineage = json.loads(capsys.readouterr().out)
    state = json.loads((checkpoint_dir(run_dir) / STATE_FILE).read_text())
    ema_better = state["heldout_loss_ema"] <= state["heldout_loss"]
    assert lineage["weights"] == ("ema" if ema_better else "raw")
    assert lineage["tokens"] == 1000 + 3 * 2 * 64
    assert lineage["heldout_loss"] == min(state["heldout_loss"], state["heldout_loss_ema"])
    assert json.loads((out / LINEAGE_FILE).read_text()) == lineage
    chosen = (
        load_weights_file(checkpoint_dir(run_dir) / EMA_FILE)
        if ema_better
        else load_weights(checkpoint_dir(run_dir))
    )
    snap = load_weights(out)
    assert all(np.array_equal(snap[k], chosen[k]) for k in chosen)
    completer = open_completer(out, runtime="torch")
    assert isinstance(
        completer.complete(CompletionRequest("def f(x):\n    return ", "\n")).text, str
    )


@pytest.mark.parametrize(
    ("losses", "has_ema", "asked", "expected"),
    [
        ({"heldout_loss": 8.8, "heldout_loss_ema": 9.2}, True, "best", "raw"),
        ({"heldout_loss": 9.2, "heldout_loss_ema": 8.8}, True, "best", "ema"),
        ({"heldout_loss": 8.8}, True, "best", "ema"),
        ({"heldout_loss": 8.8, "heldout_loss_ema": 9.2}, True, "ema", "ema"),
        ({"heldout_loss": 9.2, "heldout_loss_ema": 8.8}, True, "raw", "raw"),
        ({"heldout_loss": 9.2, "heldout_loss_ema": 8.8}, False, "ema", "raw"),
    ],
)
def test_the_shipping_weights_are_the_lower_held_out_loss(
    losses: dict, has_ema: bool, asked: str, expected: str
) -> None:
    from engine.training.checkpoint import chosen_weights

    assert chosen_weights(losses, has_ema, asked) == expected


def test_status_reports_tokens_rate_and_loss(shipped: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(continual_argv(shipped, run_dir, "--max-steps", "4", "--log-every", "1")) == 0
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run_dir), "--status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "not running" and report["tokens"] == 1000 + 4 * 2 * 64
    assert report["tokens_per_s_10min"] > 0 and report["heldout_loss"] > 0
    assert report["heldout_loss_ema"] > 0
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    heldout = [r for r in log if "heldout_loss" in r][-1]  # the parts that A/B runs compare
    assert heldout["heldout_diffusion_text"] > 0 and heldout["heldout_next_token_text_ema"] > 0


def background_run(shipped: Path, run_dir: Path, *extra: str) -> int:
    """`diffill train --background` as a user runs it; returns the detached run's pid."""
    argv = continual_argv(shipped, run_dir, *extra)
    argv[1] = "--background"
    done = subprocess.run([sys.executable, "-m", "diffill", *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pid = background.read_pid(run_dir / background.PID_FILE)
    assert pid is not None and f"pid {pid}" in done.stdout
    return pid


def wait_for(predicate, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def logged_steps(run_dir: Path) -> int:
    path = run_dir / "log.jsonl"
    if not path.exists():
        return 0
    return sum('"loss"' in line for line in path.read_text().splitlines())


def test_background_run_is_idle_priority_pausable_and_stops_with_a_checkpoint(
    shipped: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "runs" / "main"
    pid = background_run(shipped, run_dir, "--log-every", "1", "--save-minutes", "60")
    try:
        wait_for(lambda: logged_steps(run_dir) >= 2)
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        group = Path(f"/proc/{pid}/autogroup")
        if group.exists():  # the session's group yields too, not only the process inside it
            assert group.read_text().split()[-1] == "19"
        again = subprocess.run(
            [
                sys.executable,
                "-m",
                "diffill",
                *continual_argv(shipped, run_dir)[:1],
                "--background",
                "--run-dir",
                str(run_dir),
            ],
            capture_output=True,
            text=True,
        )
        assert f"already running in {run_dir} (pid {pid})" in again.stdout
        with background.paused_training(run_dir.parent) as paused:
            assert paused == [pid]
            wait_for(lambda: background.process_state(pid) == "paused", 10)
            steps = logged_steps(run_dir)
            time.sleep(1.0)
            assert logged_steps(run_dir) == steps  # no step while a benchmark measures
        wait_for(lambda: logged_steps(run_dir) > steps)
        assert main(["train", "--run-dir", str(run_dir), "--stop"]) == 0
        assert background.process_state(pid) == "gone"
    finally:
        if background.process_state(pid) != "gone":
            os.kill(pid, signal.SIGKILL)
    records = read_log(run_dir)
    assert records[-1]["ended"] == "SIGTERM"
    assert saved_state(run_dir)["step"] == records[-1]["step"]  # saved on the way out
    assert not (run_dir / background.PID_FILE).exists()


def test_sigkill_loses_at_most_the_save_interval(shipped: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "main"
    pid = background_run(shipped, run_dir, "--log-every", "1", "--save-minutes", "0.01")
    try:
        wait_for(lambda: saves(run_dir) >= 3)  # a save every 0.6 s, by the clock alone
    finally:
        os.kill(pid, signal.SIGKILL)
    state = saved_state(run_dir)  # complete, whatever the kill interrupted
    logged = [r["step"] for r in read_log(run_dir) if "heldout_loss" in r]  # one per save
    assert state["step"] in logged[-2:]  # the last save, or the one before if the kill tore it
    assert state["tokens"] == 1000 + state["step"] * 2 * 64
    resumed = main(continual_argv(shipped, run_dir, "--max-steps", str(state["step"] + 1)))
    assert resumed == 0 and saved_state(run_dir)["step"] == state["step"] + 1


def saves(run_dir: Path) -> int:
    path = run_dir / "log.jsonl"
    return path.read_text().count('"heldout_loss"') if path.exists() else 0


def test_every_bench_command_pauses_the_background_run(shipped: Path, tmp_path: Path) -> None:
    """Through the real CLI: a bench command names the run it paused."""
    runs = tmp_path / "runs"
    pid = background_run(shipped, runs / "main", "--save-minutes", "60")
    env = {**os.environ, "DIFFILL_RUNS": str(runs)}
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "diffill",
                "bench",
                "engine",
                "--model",
                str(shipped),
                "--positions",
                "1",
                "--runtimes",
                "onnx",
                "--manifest",
                str(shipped.parent / "corpus.json"),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert f"paused background training (pid {pid}) while measuring" in done.stderr
        assert "resumed background training" in done.stderr and done.returncode == 0, done.stderr
        assert background.process_state(pid) != "paused"
    finally:
        os.kill(pid, signal.SIGKILL)


def test_inspecting_a_run_does_not_import_torch() -> None:
    """`--status`, `--stop` and the benchmarks' pause stay light: no torch import."""
    code = "import engine.training.background, sys; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.strip() == "False"


def test_a_killed_benchmark_does_not_leave_the_run_paused(shipped: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    pid = background_run(shipped, runs / "main", "--save-minutes", "60")
    pauser = (
        "import sys, time\n"
        "from engine.training.background import paused_training\n"
        "with paused_training():\n"
        "    print('paused', flush=True)\n"
        "    time.sleep(600)\n"
    )
    env = {**os.environ, "DIFFILL_RUNS": str(runs)}
    bench = subprocess.Popen([sys.executable, "-c", pauser], stdout=subprocess.PIPE, env=env)
    try:
        assert bench.stdout.readline() == b"paused\n"
        wait_for(lambda: background.process_state(pid) == "paused", 10)
        bench.kill()  # no finally: block runs in a SIGKILLed benchmark
        bench.wait()
        wait_for(lambda: background.process_state(pid) != "paused", 10)
    finally:
        os.kill(pid, signal.SIGKILL)
