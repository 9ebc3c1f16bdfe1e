"""`diffill bench serve`: latency and throughput of `diffill serve`, batched against unbatched,
side by side in one run.

Two real servers on loopback run the same model: one batches the denoising steps of the
requests in flight (`--max-batch 8`), the other runs one request per model call
(`--max-batch 1`). A closed-loop asyncio load generator keeps C requests in flight (C = 1, 4,
16, 64), each a held-out position (never trained on) sent to `/v1/completions`, and records
request-to-answer latency at the client; the two servers take turns at each C, so drift in the
machine's load falls on both. Throughput is completed requests per second of wall time.

A second table prices the model calls themselves, in process: N calls one after another
against one batched call of N rows, for each kind the batcher could batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from diffill.evaluation.bench_lsp import write_section
from diffill.evaluation.evaluate import Example, clip, heldout_examples, load_or_build_manifest
from engine.errors import InputError

SECTION_START = "<!-- diffill bench serve: start -->"
SECTION_END = "<!-- diffill bench serve: end -->"
# name -> the options of its `diffill serve`; `ray`: Ray Serve, 2 replicas of one thread each
VARIANTS = {
    "batched": ("--max-batch", "8"),
    "unbatched": ("--max-batch", "1"),
    "ray": ("--ray", "--replicas", "2", "--threads", "1"),
}


@dataclass(frozen=True)
class Level:
    variant: str
    concurrency: int
    latencies_ms: tuple[float, ...]
    wall_s: float
    tokens: int
    denoise_rows: float  # per model call
    encode_rows: float

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.wall_s

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="model folder (default models/)")
    parser.add_argument("--manifest", type=Path, default=None, help="corpus manifest")
    parser.add_argument("--concurrency", default="1,4,16,64", help="comma list of levels")
    parser.add_argument("--servers", default="batched,unbatched", help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--requests", type=int, default=64, help="requests per level (>= C)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--prefix-chars", type=int, default=1500)
    parser.add_argument("--suffix-chars", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update")
    parser.add_argument("--plot", type=Path, default=Path("docs/img/bench-serve.png"))


def run(args: argparse.Namespace) -> int:
    levels = [int(c) for c in args.concurrency.split(",")]
    servers = args.servers.split(",")
    if unknown := set(servers) - set(VARIANTS):
        raise InputError(f"--servers: unknown {', '.join(sorted(unknown))}")
    manifest = load_or_build_manifest(args.manifest)
    examples = heldout_examples(manifest, max(4, args.requests // 4), seed=2)
    examples = [clip(e, args.prefix_chars, args.suffix_chars) for e in examples]
    results: list[Level] = []
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(_server(args.model, VARIANTS[name])) for name in servers}
        for url in urls.values():
            asyncio.run(_load(url, examples[:2], 1, args.max_tokens))  # warm-up
        for concurrency in levels:
            for name, url in urls.items():
                count = max(args.requests, concurrency)
                results.append(asyncio.run(_level(name, url, examples, concurrency, count, args)))
                print(_row(results[-1]), file=sys.stderr)
    command = "diffill bench serve " + " ".join(sys.argv[3:])
    text = markdown(results, command.strip(), len(examples)) + call_costs(args.model)
    print(text)
    if args.out:
        write_section(args.out, text, SECTION_START, SECTION_END)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    plot(results, args.plot)
    return 0


@contextlib.contextmanager
def _server(model: Path | None, options: tuple[str, ...]):
    """A `diffill serve` subprocess on a free loopback port, ready; stopped with SIGTERM.
    Prints the seconds from start to the first 200 on /health."""
    import httpx

    port = _free_port()
    command = [sys.executable, "-m", "diffill", "serve", "--port", str(port)]
    command += [*options, "--max-concurrency", "64"]
    command += ["--model", str(model)] if model else []
    started = time.perf_counter()
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health").status_code == 200:
                    break
            time.sleep(0.1)
        ready = time.perf_counter() - started
        print(f"`diffill serve {' '.join(options)}`: ready after {ready:.1f} s", file=sys.stderr)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=120)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(
    url: str, examples: list[Example], concurrency: int, max_tokens: int
) -> tuple[list[float], int]:
    """Send every example, `concurrency` at a time (closed loop); latencies and tokens."""
    import httpx

    todo = list(reversed(examples))
    latencies: list[float] = []
    tokens = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal tokens
        while todo:
            example = todo.pop()
            body = {"prompt": example.prefix, "suffix": example.suffix, "max_tokens": max_tokens}
            start = time.perf_counter()
            answer = await client.post(url + "/v1/completions", json=body)
            latencies.append((time.perf_counter() - start) * 1000)
            answer.raise_for_status()
            tokens += answer.json()["usage"]["completion_tokens"]

    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies, tokens


async def _level(
    name: str, url: str, examples: list[Example], concurrency: int, count: int, args
) -> Level:
    sent = [examples[i % len(examples)] for i in range(count)]
    before = await _batch_counts(url)
    start = time.perf_counter()
    latencies, tokens = await _load(url, sent, concurrency, args.max_tokens)
    wall = time.perf_counter() - start
    after = await _batch_counts(url)
    change = [b - a for a, b in zip(before, after, strict=True)]
    rows = tuple(change[i] / change[i + 1] if change[i + 1] else 0.0 for i in (0, 2))
    return Level(name, concurrency, tuple(latencies), wall, tokens, *rows)


async def _batch_counts(url: str) -> tuple[float, float, float, float]:
    """Rows and calls so far of denoising, then of encoding, from the server's /metrics."""
    import httpx

    async with httpx.AsyncClient() as client:
        text = (await client.get(url + "/metrics")).text
    found = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("diffill_b"))
    return tuple(  # type: ignore[return-value]
        float(found[f'diffill_batch_rows_{part}{{kind="{kind}"}}'])
        for kind in ("denoise", "encode")
        for part in ("sum", "count")
    )


def _rows_per_call(rows: float) -> str:
    """Under Ray the model calls are counted in the replicas, which /metrics does not see."""
    return f"{rows:.1f}" if rows else "n/a"


def _row(level: Level) -> str:
    return (
        f"| {level.variant} | {level.concurrency} | {len(level.latencies_ms)} "
        f"| {level.percentile(0.5):.0f} | {level.percentile(0.95):.0f} "
        f"| {level.throughput:.2f} | {level.tokens / level.wall_s:.0f} "
        f"| {_rows_per_call(level.denoise_rows)} | {_rows_per_call(level.encode_rows)} |"
    )


def markdown(results: list[Level], command: str, positions: int) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        "| server | concurrency | requests | p50 ms | p95 ms | requests/s | tokens/s "
        "| rows per denoising call | rows per encoding call |",
        "|---|---|---|---|---|---|---|---|---|",
        *map(_row, results),
    ]
    by = {(r.variant, r.concurrency): r for r in results}
    ratios = []
    for (variant, concurrency), level in sorted(by.items()):
        alone, single = by.get(("unbatched", concurrency)), by.get((variant, 1))
        if variant == "batched" and alone and single:
            speedup = level.throughput / alone.throughput
            growth = level.percentile(0.5) / single.percentile(0.5)
            ratios.append(
                f"- concurrency {concurrency}: batched throughput {speedup:.2f}x unbatched; "
                f"batched p50 {growth:.2f}x its concurrency-1 p50"
            )
    return (
        f"Command: `{command}`\n\nMachine: {machine}; {positions} held-out positions, "
        "cycled\n\n" + "\n".join(lines) + "\n\n" + "\n".join(ratios) + "\n"
    )


def call_costs(model: Path | None, rows: int = 8, past: int = 512, repeats: int = 7) -> str:
    """Median ms of `rows` calls one after another against one batched call, after a
    `past`-token context: a context chunk of 256 tokens, a finished 16-token block, a step."""
    import numpy as np

    from engine.loading import default_model_path
    from engine.runtime_onnx import OnnxRuntime

    runtime = OnnxRuntime(model or default_model_path())
    c, rng = runtime.config, np.random.default_rng(0)
    empty = np.zeros((c.n_layers, 2, 1, c.n_heads, 0, c.head_dim), np.float32)
    kv = runtime.encode(rng.integers(5, c.vocab_size, (1, past)), empty)
    stacked = np.ascontiguousarray(np.repeat(kv, rows, axis=2))
    lengths = np.full(rows, past)
    lines = [
        f"\nModel calls, {rows} rows after a {past}-token context (median of {repeats}):\n",
        f"| call | {rows} one after another, ms | one batched call, ms | batched / sequential |",
        "|---|---|---|---|",
    ]
    for name, tokens in (("encode 256 tokens", 256), ("encode 16 tokens", 16), ("denoise", 0)):
        width = tokens or c.canvas_size
        ids = rng.integers(5, c.vocab_size, (rows, width))
        run = runtime.denoise if not tokens else runtime.encode
        batch = runtime.denoise_batch if not tokens else runtime.encode_batch
        alone = _median(lambda f=run, x=ids: [f(x[i : i + 1], kv) for i in range(rows)], repeats)
        together = _median(lambda f=batch, x=ids: f(x, lengths, stacked), repeats)
        lines.append(f"| {name} | {alone:.0f} | {together:.0f} | {together / alone:.2f} |")
    return "\n".join(lines) + "\n"


def _median(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[repeats // 2]


def plot(results: list[Level], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for variant in dict.fromkeys(r.variant for r in results):
        mine = [r for r in results if r.variant == variant]
        xs = [r.concurrency for r in mine]
        left.plot(xs, [r.throughput for r in mine], marker="o", label=variant)
        right.plot(xs, [r.percentile(0.5) for r in mine], marker="o", label=f"{variant} p50")
        right.plot(xs, [r.percentile(0.95) for r in mine], linestyle="--", label=f"{variant} p95")
    for ax, label in ((left, "requests/s"), (right, "latency, ms")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("requests in flight")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("diffill bench serve: " + ", ".join(dict.fromkeys(r.variant for r in results)))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
