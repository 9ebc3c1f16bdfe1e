"""`diffill bench lsp`: completion latency through the real language server, as an editor sees it.

It starts `diffill lsp` as a subprocess, drives it over stdio with pygls's client, and replays
typing sessions over held-out files (never seen in training):

- eol: type whole held-out code lines a character at a time at the end of the line (nothing
  after the cursor on its line), asking after each keystroke once the debounce has passed: the
  common case, one-line completions by the extent rules (lsp_server/extent.py);
- cold: jump to a new position in a file with a full context window and ask at once;
- warm: retype the first half of a code line a keystroke at a time (`didChange` each) while
  its second half stays after the cursor, and ask after each word, once the client's debounce
  has passed (the server pre-encodes meanwhile). Code follows the cursor on its line, so
  these are single-line completions;
- multi: on an empty line that starts a function body, ask for a block of up to 64 tokens
  (exactly 64 with `--length full`, which never lets the model end the gap: the speed of
  diffusion against `ar` at equal length, whatever the model's skill).

Each configuration (mode x runtime) gets its own server, so their figures come from one run
on one machine. Results go to BENCHMARKS.md (table, machine, command) and a PNG plot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from lsprotocol import types as t
from pygls.lsp.client import LanguageClient

from engine.checkpoint import TOKENIZER_FILE, load_config
from engine.completer import Length

WORD_BREAKS = set(" (),.:=[]{}")
SECTION_START = "<!-- diffill bench lsp: start -->"
SECTION_END = "<!-- diffill bench lsp: end -->"
SETTINGS = ("steps", "length")  # model.* settings the command line may set for every server
REPORT = Path("BENCHMARKS.md")
REPORT_PLOT = Path("docs/img/bench-lsp.png")


@dataclass(frozen=True)
class Position:
    """A place to type at: the text before the cursor, the text to type there, the text after."""

    path: str
    before: str
    typed: str
    after: str


@dataclass(frozen=True)
class Sample:
    config: str
    scenario: str
    latency_ms: float
    tokens: int


def pick_positions(
    files: list[Path], count: int, seed: int
) -> tuple[list[Position], list[Position]]:
    """Deterministic single-line positions (start of a code line) and multi-line ones
    (the first body line after a `def`), from the held-out files."""
    rng = random.Random(seed)
    singles, multis = [], []
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for i, line in enumerate(lines[:-1]):
            code = line.strip()
            indent = line[: len(line) - len(line.lstrip())]
            before, after = "".join(lines[:i]) + indent, "\n" + "".join(lines[i + 1 :])
            if code.startswith("def ") and code.endswith(":") and lines[i + 1].strip():
                body = lines[i + 1]
                body_indent = body[: len(body) - len(body.lstrip())]
                text_before = "".join(lines[: i + 1]) + body_indent
                multis.append(Position(str(path), text_before, "", "\n" + "".join(lines[i + 2 :])))
            elif 16 <= len(code) <= 80 and not code.startswith(("#", '"', "'")) and i > 40:
                cut = half_line_cut(code)
                if cut:
                    singles.append(Position(str(path), before, code[:cut], code[cut:] + after))
    rng.shuffle(singles)
    rng.shuffle(multis)
    return singles[:count], multis[:count]


def line_end_positions(singles: list[Position]) -> list[Position]:
    """The single-line positions' lines typed whole: nothing follows the cursor on its line."""
    out = []
    for pos in singles:
        rest, newline, tail = pos.after.partition("\n")
        out.append(Position(pos.path, pos.before, pos.typed + rest, newline + tail))
    return out


def half_line_cut(code: str) -> int | None:
    """Where to split a line so the second half, with code in it, stays after the cursor."""
    cuts = [i + 1 for i, ch in enumerate(code) if ch in " (" and re.search(r"\w", code[i + 1 :])]
    cuts = [cut for cut in cuts if cut >= 4]
    return min(cuts, key=lambda cut: abs(cut - len(code) / 2)) if cuts else None


def held_out_files(manifest_path: Path, limit: int) -> list[Path]:
    """Python files of the corpus's held-out split; the manifest is built first if missing."""
    from engine.training.corpus import collect, default_roots, load_manifest

    if manifest_path.exists():
        manifest = load_manifest(manifest_path)
    else:
        manifest = collect(default_roots(("python",)), ("python",), (), 0.02)
    entries = [
        e
        for e in manifest["files"]
        if e["split"] == "heldout" and e["language"] == "python" and e["size"] > 4000
    ]
    return [Path(e["path"]) for e in sorted(entries, key=lambda e: e["path"])[:limit]]


def end_position(text: str) -> t.Position:
    """LSP position of the end of `text` (utf-16 units; the bench's files are ASCII-checked)."""
    lines = text.split("\n")
    return t.Position(line=len(lines) - 1, character=len(lines[-1].encode("utf-16-le")) // 2)


class Session:
    """One running server and its document, with timed requests."""

    def __init__(self, client: LanguageClient) -> None:
        self.client, self.version = client, 0
        self.uri = "file:///bench/session.py"

    def open(self, text: str) -> None:
        self.version += 1
        item = t.TextDocumentItem(
            uri=self.uri, language_id="python", version=self.version, text=text
        )
        self.client.text_document_did_open(t.DidOpenTextDocumentParams(text_document=item))

    def close(self) -> None:
        self.client.text_document_did_close(
            t.DidCloseTextDocumentParams(text_document=t.TextDocumentIdentifier(uri=self.uri))
        )

    def type_char(self, at: t.Position, char: str) -> None:
        self.version += 1
        change = t.TextDocumentContentChangePartial(range=t.Range(start=at, end=at), text=char)
        doc = t.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version)
        self.client.text_document_did_change(
            t.DidChangeTextDocumentParams(text_document=doc, content_changes=[change])
        )

    async def ask(self, at: t.Position) -> tuple[float, str]:
        params = t.InlineCompletionParams(
            context=t.InlineCompletionContext(trigger_kind=t.InlineCompletionTriggerKind.Automatic),
            text_document=t.TextDocumentIdentifier(uri=self.uri),
            position=at,
        )
        start = time.perf_counter()
        result = await self.client.text_document_inline_completion_async(params)
        elapsed = (time.perf_counter() - start) * 1000
        items = result.items if isinstance(result, t.InlineCompletionList) else result or []
        text = items[0].insert_text if items else ""
        return elapsed, text if isinstance(text, str) else text.value


async def start_server(options: dict) -> LanguageClient:
    client = LanguageClient("diffill-bench", "1")
    await client.start_io(sys.executable, "-m", "diffill", "lsp")
    await client.initialize_async(
        t.InitializeParams(capabilities=t.ClientCapabilities(), initialization_options=options)
    )
    client.initialized(t.InitializedParams())
    for _ in range(600):  # the model loads in the background; poll until it is ready
        status = await client.protocol.send_request_async("diffill/status", {})
        state = status["state"] if isinstance(status, dict) else status.state
        if state != "loading":
            if state != "ready":
                raise RuntimeError(f"server failed to load the model: {status}")
            return client
        await asyncio.sleep(0.1)
    raise RuntimeError("server did not load the model within 60 s")


def server_peak_rss_mb(client: LanguageClient) -> float:
    status = Path(f"/proc/{client._server.pid}/status").read_text()
    line = next(ln for ln in status.splitlines() if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


async def run_singles(session: Session, positions: list[Position], debounce: float, count) -> list:
    """Cold request at each position, then warm requests while typing the line."""
    out = []
    for pos in positions:
        session.open(pos.before + pos.after)
        cursor = end_position(pos.before)
        latency, text = await session.ask(cursor)
        out.append(("cold", latency, count(text)))
        for char in pos.typed:
            session.type_char(cursor, char)
            cursor = t.Position(line=cursor.line, character=cursor.character + 1)
            if char in WORD_BREAKS:
                await asyncio.sleep(debounce)
                latency, text = await session.ask(cursor)
                out.append(("warm", latency, count(text)))
        session.close()
    return out


async def run_line_ends(session: Session, positions: list[Position], debounce: float, count):
    """A request after every keystroke's debounce while typing each line at its end."""
    out = []
    for pos in positions:
        session.open(pos.before + pos.after)
        cursor = end_position(pos.before)
        for char in pos.typed:
            session.type_char(cursor, char)
            cursor = t.Position(line=cursor.line, character=cursor.character + 1)
            await asyncio.sleep(debounce)
            latency, text = await session.ask(cursor)
            out.append(("eol", latency, count(text)))
        session.close()
    return out


async def run_multis(session: Session, positions: list[Position], debounce: float, count) -> list:
    out = []
    for pos in positions:
        session.open(pos.before + pos.after)
        await asyncio.sleep(debounce)
        latency, text = await session.ask(end_position(pos.before))
        out.append(("multi", latency, count(text)))
        session.close()
    return out


async def bench_config(name: str, options: dict, singles, multis, debounce: float, count):
    client = await start_server(options)
    session = Session(client)
    try:
        rows = await run_line_ends(session, line_end_positions(singles), debounce, count)
        rows += await run_singles(session, singles, debounce, count)
        rows += await run_multis(session, multis, debounce, count)
        rss = server_peak_rss_mb(client)
    finally:
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    return [Sample(name, s, ms, n) for s, ms, n in rows], rss


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(share * (len(ordered) - 1)), len(ordered) - 1)]


def summarize(samples: list[Sample], rss: dict[str, float]) -> list[dict]:
    rows = []
    for config in dict.fromkeys(s.config for s in samples):
        for scenario in ("eol", "warm", "cold", "multi"):
            picked = [s for s in samples if s.config == config and s.scenario == scenario]
            if not picked:
                continue
            ms = [s.latency_ms for s in picked]
            tokens = sum(s.tokens for s in picked)
            rows.append(
                {
                    "config": config,
                    "scenario": scenario,
                    "n": len(ms),
                    "p50_ms": percentile(ms, 0.5),
                    "p95_ms": percentile(ms, 0.95),
                    "mean_tokens": tokens / len(picked),
                    "tokens_per_s": tokens / (sum(ms) / 1000) if sum(ms) else 0.0,
                    "rss_mb": rss[config],
                }
            )
    return rows


def matmul_gflops() -> float:
    """Measured fp32 matmul rate at a context-encoding shape, the machine's compute ceiling."""
    import numpy as np

    a, b = np.random.rand(512, 256).astype(np.float32), np.random.rand(256, 704).astype(np.float32)
    times = []
    for _ in range(50):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * 512 * 256 * 704 / statistics.median(times) / 1e9


def flops_per_token(model: Path, context: int) -> float:
    """Forward FLOPs for one token attending over `context` tokens (matmuls only)."""
    c = load_config(model)
    per_layer = 2 * (4 * c.d_model**2 + 3 * c.d_model * c.ffn_hidden) + 4 * context * c.d_model
    return c.n_layers * per_layer + 2 * c.d_model * c.vocab_size


def floor_note(model: Path, budget: int) -> str:
    c = load_config(model)
    rate = matmul_gflops()
    step = c.canvas_size * flops_per_token(model, budget) / 1e9
    encode = budget * flops_per_token(model, budget // 2) / 1e9
    return (
        f"Compute floor: one denoising step of {c.canvas_size} canvas tokens over a {budget}-token "
        f"context is {step * 1000:.0f} MFLOP, {step / rate * 1000:.2f} ms at the measured "
        f"{rate:.0f} GFLOP/s fp32 matmul rate; encoding a cold {budget}-token context is "
        f"{encode:.2f} GFLOP, {encode / rate * 1000:.1f} ms. A warm completion of k steps has a "
        f"floor of k x {step / rate * 1000:.2f} ms; the gap to the measured p50 is framework and "
        "memory overhead."
    )


def markdown(rows: list[dict], command: str, note: str) -> str:
    head = (
        "| config | scenario | n | p50 ms | p95 ms | mean tokens | tokens/s | server peak RSS MB |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['scenario']} | {r['n']} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['mean_tokens']:.1f} | {r['tokens_per_s']:.0f} | "
            f"{r['rss_mb']:.0f} |"
        )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return f"Command: `{command}`\n\nMachine: {machine}\n\n" + "\n".join(lines) + f"\n\n{note}\n"


def write_section(
    path: Path, text: str, start: str = SECTION_START, end: str = SECTION_END
) -> None:
    """Put `text` between a benchmark's markers in `path`, keeping the rest of the file."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    head, found, rest = old.partition(start)
    tail = rest.partition(end)[2] if found else "\n"
    path.write_text(f"{head.rstrip()}\n\n{start}\n{text}{end}\n{tail.lstrip()}")


def plot(samples: list[Sample], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for s in samples:
        groups.setdefault(f"{s.config}\n{s.scenario}", []).append(s.latency_ms)
    fig, ax = plt.subplots(figsize=(max(6, len(groups) * 1.1), 4))
    ax.boxplot(list(groups.values()), showfliers=True)
    ax.set_xticks(range(1, len(groups) + 1), list(groups), fontsize=7)
    ax.set_ylabel("request latency, ms (log)")
    ax.set_yscale("log")
    ax.axhline(25, color="green", linestyle="--", linewidth=0.8, label="25 ms target")
    ax.legend()
    ax.set_title("diffill bench lsp: end-to-end inlineCompletion latency")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--manifest", type=Path, default=Path("data/corpus.json"))
    parser.add_argument("--files", type=int, default=6, help="held-out files to type in")
    parser.add_argument("--positions", type=int, default=6, help="positions per scenario")
    parser.add_argument("--modes", default="diffusion,ar")
    parser.add_argument("--runtimes", default="onnx,torch")
    parser.add_argument("--steps", type=int, default=None, help="model.steps (default: server's)")
    parser.add_argument(
        "--length",
        choices=get_args(Length),
        default=None,
        help="model.length (default: server's); full: diffusion against ar at equal length",
    )
    parser.add_argument("--debounce-ms", type=float, default=150.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPORT, help="its section is replaced")
    parser.add_argument(
        "--plot", type=Path, help=f"default: {REPORT_PLOT} for {REPORT}, else beside --out"
    )


def plot_path(out: Path, plot: Path | None) -> Path:
    """Where the plot goes: a run written elsewhere than the report keeps its plot beside it,
    so a comparison run does not overwrite the report's figure."""
    if plot is not None:
        return plot
    return REPORT_PLOT if out == REPORT else out.with_suffix(".png")


def run(args: argparse.Namespace) -> int:
    from tokenizers import Tokenizer

    from engine.loading import default_model_path

    args.model = args.model or default_model_path()

    tokenizer = Tokenizer.from_file(str(args.model / TOKENIZER_FILE))

    def count(text: str) -> int:
        return len(tokenizer.encode(text).ids) if text else 0

    singles, multis = pick_positions(
        held_out_files(args.manifest, args.files), args.positions, args.seed
    )
    samples, rss = [], {}
    for runtime in args.runtimes.split(","):
        for mode in args.modes.split(","):
            name = f"{mode}/{runtime}"
            model = {"path": str(args.model), "runtime": runtime, "mode": mode}
            model |= {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
            options = {"model": model}
            got, rss[name] = asyncio.run(
                bench_config(name, options, singles, multis, args.debounce_ms / 1000, count)
            )
            samples += got
            print(f"{name}: {len(got)} requests, peak RSS {rss[name]:.0f} MB", file=sys.stderr)
    rows = summarize(samples, rss)
    command = "diffill bench lsp " + " ".join(sys.argv[3:])
    text = markdown(rows, command.strip(), floor_note(args.model, 1024))
    write_section(args.out, text)
    figure = plot_path(args.out, args.plot)
    figure.parent.mkdir(parents=True, exist_ok=True)
    plot(samples, figure)
    print(text)
    print(json.dumps(rows))
    return 0
