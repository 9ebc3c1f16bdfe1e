"""`diffill soak`: the real language server typed into for a bounded time, watched for leaks.

Held-out files are typed character by character into documents that come and go; each
keystroke asks for an inline completion, a third of them are cancelled explicitly and the rest
superseded by the next keystroke, and code actions are asked now and then. Every `--sample-s`
seconds the server's RSS is read twice: once at that instant, requests in flight (`rss_busy_mb`,
which swings by what one request holds), and once at rest (`rss_mb`: the typist pauses, the last
request is answered, and `QUIET_S` later what the server keeps is read), the leak signal. With
it go the thread count (from /proc) and asyncio task count (from `diffill/status`), the
latency of the completions answered since the last sample, and what the server wrote to stderr
(kept in OUT/stderr.log). The verdict compares
the end of the run with its reference point (minute 10, or half the run when it is
shorter): RSS at most 10% above the reference, the median task and thread counts no higher
than the most seen before the reference, p95 latency at most 50% above the reference's.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lsprotocol import types as t

from diffill.evaluation.bench_lsp import Session, end_position, held_out_files, percentile
from diffill.evaluation.bench_lsp import start_server as start_bench_server

REFERENCE_S = 600.0  # the figure: the last 10 minutes against minute 10
RSS_GROWTH = 0.10
P95_GROWTH = 0.50
TYPED_SPAN = 400  # characters typed into each file before it is closed
CANCEL_SHARE = 3  # one keystroke's request in this many is cancelled explicitly
CODE_ACTION_EVERY = 40  # keystrokes
QUIET_S = 0.5  # after the last answer, before RSS at rest is read: background pre-encodes end
COUNTS = ("tasks", "threads", "handling")  # must not grow past what was seen before minute 10


@dataclass
class Sample:
    t_s: float
    rss_mb: float  # at rest
    rss_busy_mb: float  # at a random instant, requests in flight
    threads: int
    tasks: int
    handling: int  # messages the server has not finished handling (`diffill/status`)
    answered: int
    stderr_kb: float  # what the server wrote to stderr so far: a log that grows is a leak too
    p50_ms: float | None
    p95_ms: float | None


@dataclass
class Typist:
    """The client side: one document at a time, typed into, then closed for a new one."""

    session: Session
    rng: random.Random
    latencies: list[float] = field(default_factory=list)
    ids: itertools.count = field(default_factory=itertools.count)
    keystrokes: int = 0
    stderr_bytes: int = 0
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)  # held by a keystroke, or a sample
    pending: tuple | None = None  # the last request: (id, future, started)

    async def type_file(self, text: str, deadline: float, pace_s: float) -> None:
        cut = self.rng.randrange(0, max(1, len(text) - TYPED_SPAN))
        cut = text.rfind("\n", 0, cut) + 1
        typed, rest = text[cut : cut + TYPED_SPAN], text[cut + TYPED_SPAN :]
        self.session.uri = f"file:///soak/doc{next(self.ids)}.py"
        self.session.open(text[:cut] + rest)
        before = text[:cut]
        for char in typed:
            if time.monotonic() > deadline:
                break
            async with self.gate:
                self.session.type_char(end_position(before), char)
                before += char
                self.pending = await self._keystroke(before, self.pending)
            await asyncio.sleep(pace_s)
        await self.settle()
        self.session.close()

    async def settle(self) -> None:
        """Wait for the last request's answer."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await self._answered(pending)

    async def _keystroke(self, before: str, pending):
        """Ask at the cursor; the previous request is cancelled or superseded."""
        self.keystrokes += 1
        if pending is not None and self.keystrokes % CANCEL_SHARE == 0:
            self.session.client.protocol.notify(t.CANCEL_REQUEST, t.CancelParams(id=pending[0]))
        if pending is not None and before[-1] in " \n":
            await self._answered(pending)  # a word ended: the user waits for the answer
        if self.keystrokes % CODE_ACTION_EVERY == 0:
            await self._code_action(end_position(before))
        return self._ask(end_position(before))

    def _ask(self, at: t.Position):
        id_ = f"soak{next(self.ids)}"
        params = t.InlineCompletionParams(
            context=t.InlineCompletionContext(trigger_kind=t.InlineCompletionTriggerKind.Automatic),
            text_document=t.TextDocumentIdentifier(uri=self.session.uri),
            position=at,
        )
        sent = self.session.client.protocol.send_request(
            t.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=id_
        )
        future = asyncio.wrap_future(sent)
        future.add_done_callback(_seen)  # most are superseded and never awaited
        return id_, future, time.perf_counter()

    async def _answered(self, pending) -> None:
        _, future, started = pending
        try:
            await future
        except Exception:  # cancelled or superseded: an answer too, but not a latency
            return
        self.latencies.append((time.perf_counter() - started) * 1000)

    async def _code_action(self, at: t.Position) -> None:
        params = t.CodeActionParams(
            text_document=t.TextDocumentIdentifier(uri=self.session.uri),
            range=t.Range(start=t.Position(line=at.line, character=0), end=at),
            context=t.CodeActionContext(diagnostics=[]),
        )
        await self.session.client.text_document_code_action_async(params)


def _seen(future: asyncio.Future) -> None:
    """Take a request's outcome (a cancel is an answer too), so asyncio does not report it."""
    if not future.cancelled():
        future.exception()


def proc_status(pid: int) -> tuple[float, int]:
    """(RSS in MB, threads) of a process, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


async def drain_stderr(typist: Typist, stream: asyncio.StreamReader, path: Path) -> None:
    """Read the server's stderr into `path` (pygls's client opens the pipe and never reads
    it: a full pipe would block the server) and count it."""
    with path.open("wb") as log:
        while chunk := await stream.read(65536):
            typist.stderr_bytes += len(chunk)
            log.write(chunk)


async def sampler(typist: Typist, pid: int, every_s: float, out: list[Sample]) -> None:
    started, seen = time.monotonic(), 0
    while True:
        rss_busy, _ = proc_status(pid)
        async with typist.gate:
            await typist.settle()
            await asyncio.sleep(QUIET_S)
            status = await typist.session.client.protocol.send_request_async("diffill/status", {})
            rss, threads = proc_status(pid)
        window = typist.latencies[seen:]
        seen = len(typist.latencies)
        p50, p95 = (percentile(window, s) if window else None for s in (0.5, 0.95))
        tasks, handling = (
            status[k] if isinstance(status, dict) else getattr(status, k)
            for k in ("tasks", "handling")
        )
        log_kb = typist.stderr_bytes / 1024
        elapsed = time.monotonic() - started
        out.append(
            Sample(elapsed, rss, rss_busy, threads, tasks, handling, len(window), log_kb, p50, p95)
        )
        await asyncio.sleep(every_s)


async def soak(args: argparse.Namespace, files: list[str]) -> list[Sample]:
    client = await start_bench_server({"model": {"path": str(args.model)}})
    typist = Typist(Session(client), random.Random(args.seed))
    samples: list[Sample] = []
    server = client._server
    args.out.mkdir(parents=True, exist_ok=True)
    drain = asyncio.ensure_future(drain_stderr(typist, server.stderr, args.out / "stderr.log"))
    watch = asyncio.ensure_future(sampler(typist, server.pid, args.sample_s, samples))
    deadline = time.monotonic() + args.minutes * 60
    try:
        for text in itertools.cycle(files):
            if time.monotonic() > deadline:
                break
            await typist.type_file(text, deadline, args.pace_ms / 1000)
        await asyncio.sleep(0)  # one last sample sees the end state
    finally:
        watch.cancel()
        drain.cancel()
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    return samples


def verdict(samples: list[Sample]) -> dict[str, object]:
    """The end of the run against its reference point."""
    total = samples[-1].t_s
    ref_s = REFERENCE_S if total >= 2 * REFERENCE_S else total / 2
    reference = min(samples, key=lambda s: abs(s.t_s - ref_s))
    tail = [s for s in samples if s.t_s >= total - ref_s and s.t_s >= reference.t_s]
    before = [s for s in samples if s.t_s <= reference.t_s]
    before_max = {k: max(getattr(s, k) for s in before) for k in COUNTS}
    tail_median = {k: statistics.median(getattr(s, k) for s in tail) for k in COUNTS}
    p95s = [s.p95_ms for s in tail if s.p95_ms is not None]
    ref_p95 = [s.p95_ms for s in samples if s.t_s <= reference.t_s and s.p95_ms is not None]
    rss_growth = max(s.rss_mb for s in tail) / reference.rss_mb - 1
    p95_growth = (max(p95s) / max(ref_p95) - 1) if p95s and ref_p95 else None
    return {
        "minutes": round(total / 60, 2),
        "reference_minute": round(reference.t_s / 60, 2),
        "rss_mb_reference": round(reference.rss_mb, 1),
        "rss_mb_tail_max": round(max(s.rss_mb for s in tail), 1),
        "rss_growth": round(rss_growth, 4),
        "rss_busy_mb_reference": round(reference.rss_busy_mb, 1),
        "rss_busy_mb_max": round(max(s.rss_busy_mb for s in samples), 1),
        # in-flight requests count in tasks and handling: a range, so the tail's median
        # is held to the most seen before the reference
        **{f"{k}_until_reference_max": before_max[k] for k in COUNTS},
        **{f"{k}_tail_median": tail_median[k] for k in COUNTS},
        "p95_ms_reference": max(ref_p95) if ref_p95 else None,
        "p95_ms_tail_max": max(p95s) if p95s else None,
        "answered": sum(s.answered for s in samples),
        "stderr_kb": round(samples[-1].stderr_kb, 1),
        "rss_flat": rss_growth <= RSS_GROWTH,
        **{f"no_{k}_growth": tail_median[k] <= before_max[k] for k in COUNTS},
        "p95_stable": p95_growth is not None and p95_growth <= P95_GROWTH,
    }


def plot(samples: list[Sample], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t_s / 60 for s in samples]
    series = [
        ("RSS at rest, MB", [s.rss_mb for s in samples]),
        ("RSS busy, MB", [s.rss_busy_mb for s in samples]),
        ("asyncio tasks", [s.tasks for s in samples]),
        ("threads", [s.threads for s in samples]),
        ("messages in flight", [s.handling for s in samples]),
        ("p95 latency, ms", [s.p95_ms for s in samples]),
    ]
    fig, axes = plt.subplots(len(series), 1, figsize=(7, 9.5), sharex=True)
    for ax, (label, values) in zip(axes, series, strict=True):
        ax.plot(minutes, values, marker=".", linewidth=0.8)
        ax.set_ylabel(label)
    axes[-1].set_xlabel("minutes")
    axes[0].set_title("diffill soak: the language server over time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=Path("models"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--manifest", type=Path, default=Path("data/corpus.json"))
    parser.add_argument("--files", type=int, default=20, help="held-out files to type")
    parser.add_argument("--pace-ms", type=float, default=60.0, help="between keystrokes")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))


def run(args: argparse.Namespace) -> int:
    paths = held_out_files(args.manifest, args.files)
    files = [text for p in paths if (text := p.read_text(errors="replace")).isascii()]
    samples = asyncio.run(soak(args, files))
    result = verdict(samples)
    (args.out / "soak.json").write_text(
        json.dumps({"verdict": result, "samples": [asdict(s) for s in samples]}, indent=1)
    )
    plot(samples, args.out / "soak.png")
    print(json.dumps(result, indent=1))
    print(f"samples and plot in {args.out}", file=sys.stderr)
    flags = ("rss_flat", *(f"no_{k}_growth" for k in COUNTS), "p95_stable")
    return 0 if all(result[flag] for flag in flags) else 1
