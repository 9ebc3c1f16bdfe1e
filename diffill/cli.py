"""The `diffill` command: one table of subcommands, each imported only when it runs.

Importing lazily keeps `diffill lsp` and `diffill complete` free of torch. Every command
module exposes `configure(parser)` and `run(args) -> int`. Expected failures
(engine.errors.DiffillError) print one line naming the problem and exit 2. Measuring commands
(`bench ...`, `sweep`, and `eval` and `ship`, which time tok/s) pause the background training
run while they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "corpus": ("engine.training.corpus", "collect training and held-out source files"),
    "tokenizer": ("engine.training.tokenizer", "train the byte-level BPE tokenizer on a corpus"),
    "train": ("engine.training.train", "train the diffusion FIM model"),
    "export": ("engine.training.export", "export a checkpoint to ONNX graphs for serving"),
    "complete": ("diffill.complete", "complete a file position or a JSON prefix/suffix on stdin"),
    "eval": ("diffill.evaluation.evaluate", "exact match and edit similarity on held-out gaps"),
    "eval context": ("diffill.evaluation.context", "held-out gaps with and without other files"),
    "bench engine": ("diffill.evaluation.bench_engine", "engine latency, diffusion against ar"),
    "bench lsp": ("diffill.evaluation.bench_lsp", "latency through the real language server"),
    "bench family": ("diffill.evaluation.bench_family", "open-weight family latency, DualCache"),
    "bench steps": ("diffill.evaluation.bench_steps", "single model calls, model against model"),
    "bench serve": ("diffill.evaluation.bench_serve", "diffill serve, batched against unbatched"),
    "bench train": ("diffill.evaluation.bench_train", "training tok/s against the matmul peak"),
    "soak": ("diffill.evaluation.soak", "type into the real server for a while, watch for leaks"),
    "ab": ("diffill.evaluation.ab", "training choices A/B'd on one token budget"),
    "ship": ("diffill.evaluation.ship", "ship the long-lived run's weights when eval says better"),
    "doctor": ("diffill.doctor", "what would run where, and how much memory it needs"),
    "sweep": ("diffill.evaluation.sweep.main", "model shapes under the latency budget"),
    "lsp": ("lsp_server.main", "run the language server over stdio"),
    "serve": ("http_server.main", "serve completions over HTTP (OpenAI, Mercury, llama.cpp)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: diffill COMMAND [options]\n\ncommands:\n" + "\n".join(lines)


def _split_command(argv: list[str]) -> tuple[str, list[str]] | None:
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            return name, argv[words:]
    return None


MEASURING = {"sweep", "eval", "ship"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    found = _split_command(argv)
    if found is None:
        print(_usage(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    name, rest = found
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"diffill {name}", description=help_)
    module.configure(parser)
    args = parser.parse_args(rest)
    from engine.errors import DiffillError

    try:
        if name.startswith("bench ") or name in MEASURING:
            from engine.training.background import paused_training

            with paused_training():
                return int(module.run(args) or 0)
        return int(module.run(args) or 0)
    except DiffillError as exc:
        print(f"diffill {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
