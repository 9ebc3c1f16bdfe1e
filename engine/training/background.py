"""The long-lived training run: started detached at the lowest CPU priority, inspected,
stopped, paused while benchmarks measure, and snapshotted for shipping.

With no GPU the model learns from the CPU time working sessions leave idle, so one run lives
outside the repository (default ~/.cache/diffill/runs/main) and every session resumes it:
`diffill train --background` starts it (nice 19, SCHED_IDLE, its autogroup at nice 19, a
pidfile and a log), `--status` says how far it got, `--stop` makes it checkpoint and exit,
`--snapshot DIR` writes the weights that would ship. When its folder is gone it starts again
from the shipped model's weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from engine.errors import InputError
from engine.training.checkpoint import LOG_FILE, checkpoint_dir

RUNS_ENV = "DIFFILL_RUNS"  # the folder that holds run folders; default ~/.cache/diffill/runs
PID_FILE = "train.pid"
OUTPUT_FILE = "train.out"
CORPUS_FILE = "corpus.json"
RATE_WINDOW_S = 600
STOP_WAIT_S = 300
ACTIONS = ("continual", "background", "status", "stop", "snapshot")


def runs_root() -> Path:
    return Path(os.environ.get(RUNS_ENV) or Path.home() / ".cache" / "diffill" / "runs")


def add_background_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--continual",
        action="store_true",
        help="run the long-lived run in the foreground (resume it, or start from the shipped "
        f"model); --run-dir defaults to ${RUNS_ENV}/main, else ~/.cache/diffill/runs/main",
    )
    group.add_argument(
        "--background",
        action="store_true",
        help="start the long-lived run detached at the lowest CPU priority, with a pidfile",
    )
    group.add_argument("--status", action="store_true", help="how far the long-lived run got")
    group.add_argument("--stop", action="store_true", help="checkpoint the long-lived run, end it")
    group.add_argument(
        "--snapshot",
        type=Path,
        metavar="DIR",
        help="write the run's weights as a model folder (EMA or raw: the lower held-out loss)",
    )
    parser.add_argument("--json", action="store_true", help="--status as JSON")


def requested(args: argparse.Namespace) -> bool:
    return any(getattr(args, name) for name in ACTIONS if name != "continual")


def run_dir_of(args: argparse.Namespace) -> Path:
    return (args.run_dir or runs_root() / "main").expanduser().resolve()


def dispatch(args: argparse.Namespace) -> int:
    """Every action but --continual, which is a training run (engine/training/train.py)."""
    run_dir = run_dir_of(args)
    if args.background:
        return start(args, run_dir)
    if args.status:
        report = status(run_dir)
        print(json.dumps(report, indent=1) if args.json else format_status(report))
        return 0
    if args.stop:
        return stop(run_dir)
    from engine.training.checkpoint import snapshot

    print(json.dumps(snapshot(run_dir, args.snapshot)))
    return 0


def passthrough(args: argparse.Namespace) -> list[str]:
    """The command-line options of `args` that the detached run must see again."""
    from engine.config import TrainConfig

    argv = ["--preset", args.preset] if args.preset else []
    for name in ("corpus", "tokenizer", "init_from"):
        if getattr(args, name):
            argv += [f"--{name.replace('_', '-')}", str(Path(getattr(args, name)).resolve())]
    for item in args.model_set:
        argv += ["--model-set", item]
    for field in dataclasses.fields(TrainConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            flag = field.name.replace("_", "-")
            if field.type == "bool":
                argv.append(f"--{flag}" if value else f"--no-{flag}")
            else:
                argv += [f"--{flag}", str(value)]
    return argv


AUTOGROUP = Path("/proc/self/autogroup")


def lowest_priority() -> None:
    """In the child before exec (after setsid): nice 19, the idle scheduling class, and nice 19
    for the new session's autogroup. Where Linux groups each session's processes
    (sched_autogroup_enabled), the scheduler shares the CPU between groups before it looks at
    nice or SCHED_IDLE inside them: the detached run took half the cores beside any other
    session's work (117% of two cores in a `top` sample beside a nice-0 evaluation)."""
    os.nice(19)
    if hasattr(os, "SCHED_IDLE"):
        with suppress(OSError):  # without it the nice value alone still yields the CPU
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    with suppress(OSError):  # no autogroups (other kernels, other systems): nothing to lower
        AUTOGROUP.write_text("19")


def start(args: argparse.Namespace, run_dir: Path) -> int:
    """Start the run detached, unless it already runs (a paused one is resumed)."""
    pid = running_pid(run_dir)
    if pid is not None:
        if process_state(pid) == "paused":
            os.kill(pid, signal.SIGCONT)
            print(f"resumed the paused run in {run_dir} (pid {pid})")
        else:
            print(f"already running in {run_dir} (pid {pid})")
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "diffill", "train", "--continual", "--run-dir", str(run_dir)]
    argv += passthrough(args)
    with (run_dir / OUTPUT_FILE).open("ab") as output:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lowest_priority,
        )
    (run_dir / PID_FILE).write_text(f"{child.pid}\n")
    print(f"started the background run in {run_dir} (pid {child.pid}); log: {run_dir / LOG_FILE}")
    return 0


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(run_dir: Path) -> int | None:
    """The pid in the run's pidfile when that process lives and is a diffill training run."""
    pid = read_pid(run_dir / PID_FILE)
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if b"diffill" in cmdline and b"train" in cmdline else None


def process_state(pid: int) -> str:
    """running, sleeping, paused (SIGSTOP: a benchmark is measuring) or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    code = stat.rsplit(")", 1)[1].split()[0]
    return {"R": "running", "T": "paused", "t": "paused"}.get(code, "sleeping")


def read_log(run_dir: Path) -> list[dict]:
    path = run_dir / LOG_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return records


def recent_rate(records: list[dict], window_s: float = RATE_WINDOW_S) -> float | None:
    """Tokens/s over the last `window_s` seconds of logged steps (wall clock, pauses included)."""
    timed = [r for r in records if "time" in r and "tokens" in r]
    if len(timed) < 2:
        return None
    last = timed[-1]
    first = next(r for r in timed if r["time"] >= last["time"] - window_s)
    seconds = last["time"] - first["time"]
    return (last["tokens"] - first["tokens"]) / seconds if seconds > 0 else None


def status(run_dir: Path) -> dict:
    records = read_log(run_dir)
    pid = running_pid(run_dir)
    counted = [r for r in records if "tokens" in r]
    last = counted[-1] if counted else {}
    losses = [r for r in records if r.get("heldout_loss") is not None]
    state_path = checkpoint_dir(run_dir) / "train_state.json"
    saved = json.loads(state_path.read_text()) if state_path.exists() else {}
    return {
        "run_dir": str(run_dir),
        "state": process_state(pid) if pid else "not running",
        "pid": pid,
        "tokens": counted[-1]["tokens"] if counted else saved.get("tokens", 0),
        "step": counted[-1].get("step") if counted else saved.get("step", 0),
        "checkpoint_tokens": saved.get("tokens"),
        "tokens_per_s_10min": recent_rate(records),
        "heldout_loss": losses[-1]["heldout_loss"] if losses else None,
        "heldout_loss_ema": losses[-1].get("heldout_loss_ema") if losses else None,
        "last_log_age_s": round(time.time() - counted[-1]["time"]) if "time" in last else None,
    }


def format_status(report: dict) -> str:
    def number(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    return "\n".join(
        [
            f"run        {report['run_dir']}",
            f"state      {report['state']}" + (f" (pid {report['pid']})" if report["pid"] else ""),
            f"tokens     {report['tokens']:,} (step {report['step']}; checkpoint at "
            f"{number(report['checkpoint_tokens'], ',')})",
            f"tok/s      {number(report['tokens_per_s_10min'], '.0f')} over the last 10 minutes",
            f"held-out   {number(report['heldout_loss'], '.3f')} "
            f"(EMA {number(report['heldout_loss_ema'], '.3f')})",
        ]
    )


def stop(run_dir: Path) -> int:
    """SIGTERM: the run checkpoints, then exits; wait for it."""
    pid = running_pid(run_dir)
    if pid is None:
        print(f"no run is running in {run_dir}")
        return 0
    os.kill(pid, signal.SIGCONT)  # a paused run must wake up to checkpoint
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline and process_state(pid) != "gone":
        _reap(pid)
        time.sleep(0.5)
    if process_state(pid) != "gone":
        raise InputError(f"the run (pid {pid}) did not stop within {STOP_WAIT_S} s")
    (run_dir / PID_FILE).unlink(missing_ok=True)
    print(f"stopped the run in {run_dir} after its checkpoint (pid {pid})")
    return 0


def _reap(pid: int) -> None:
    """Collect the exit status when the run is this process's child (tests start it so)."""
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@contextmanager
def paused_training(root: Path | None = None) -> Iterator[list[int]]:
    """SIGSTOP every background run under `root` (default runs_root()) while a benchmark
    measures, SIGCONT after, and say so: a figure taken beside a training run is noise."""
    pids = [
        pid
        for folder in sorted((root or runs_root()).glob("*"))
        if (pid := running_pid(folder)) is not None and process_state(pid) != "paused"
    ]
    if not pids:
        yield pids
        return
    watchdog = resume_when_gone(os.getpid(), pids)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    print(
        f"paused background training (pid {', '.join(map(str, pids))}) while measuring",
        file=sys.stderr,
    )
    try:
        yield pids
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        watchdog.kill()
        watchdog.wait()
        print("resumed background training", file=sys.stderr)


def resume_when_gone(pauser: int, pids: list[int]) -> subprocess.Popen:
    """A tiny process that SIGCONTs the paused runs once `pauser` is gone: a benchmark killed
    mid-measurement (SIGKILL, a timeout) must not leave the training run stopped for good."""
    targets = " ".join(map(str, pids))
    script = f"while kill -0 {pauser} 2>/dev/null; do sleep 1; done; kill -CONT {targets}"
    return subprocess.Popen(["sh", "-c", script], start_new_session=True)
