"""`diffill complete`: fill the gap at a file position, or a JSON prefix/suffix from stdin.

    diffill complete FILE --line L --col C      (1-based line and column, in characters)
    echo '{"prefix": "...", "suffix": "..."}' | diffill complete -

Runs on ONNX Runtime when the model folder has graphs, so it never needs torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from engine.completer import DEFAULT_STEPS, CompletionRequest, CompletionResult
from engine.errors import InputError
from engine.loading import open_completer
from engine.options import add_model_arguments

MAX_FILE_BYTES = 1_000_000  # larger files are data, not code being typed


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="source file, or - for JSON {prefix, suffix} on stdin")
    parser.add_argument("--line", type=int, help="1-based line of the cursor")
    parser.add_argument("--col", type=int, help="1-based column of the cursor, in characters")
    add_model_arguments(parser)
    parser.add_argument("--mode", choices=("diffusion", "ar"), default="diffusion")
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"most denoising steps per block (default {DEFAULT_STEPS}, as served); 0: block size",
    )
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    prefix, suffix = read_stdin_context() if args.file == "-" else read_file_context(args)
    request = CompletionRequest(
        prefix=prefix,
        suffix=suffix,
        max_tokens=args.max_tokens,
        mode=args.mode,
        max_steps=args.steps or None,
        threshold=args.threshold,
        num_candidates=args.candidates,
        temperature=args.temperature,
    )
    completer = open_completer(args.model, args.runtime, args.device, args.threads)
    result = completer.complete(request)
    print(json.dumps(result_json(result, args.mode)) if args.json else human(result, args.mode))
    return 0


def read_file_context(args: argparse.Namespace) -> tuple[str, str]:
    if args.line is None or args.col is None:
        raise InputError("--line and --col are required with a FILE (use - for JSON on stdin)")
    return split_at(read_source(Path(args.file)), args.line, args.col, args.file)


def read_source(path: Path) -> str:
    """The file as text: size-limited, UTF-8, not binary."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(f"{path} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if b"\0" in data:
        raise InputError(f"{path} looks binary (it holds NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (bad byte at offset {exc.start})") from None


def split_at(text: str, line: int, col: int, name: str) -> tuple[str, str]:
    """(prefix, suffix) around a 1-based line and column."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise InputError(f"line {line} is outside {name} (lines 1..{len(lines)})")
    width = len(lines[line - 1].rstrip("\r"))
    if not 1 <= col <= width + 1:
        raise InputError(f"column {col} is outside line {line} of {name} (columns 1..{width + 1})")
    offset = sum(len(text_line) + 1 for text_line in lines[: line - 1]) + col - 1
    return text[:offset], text[offset:]


def read_stdin_context() -> tuple[str, str]:
    data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"stdin holds more than {MAX_FILE_BYTES} bytes")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"stdin is not UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(value.get(key, ""), str) for key in ("prefix", "suffix")
    ):
        raise InputError('stdin must be a JSON object {"prefix": str, "suffix": str}')
    return value.get("prefix", ""), value.get("suffix", "")


def result_json(result: CompletionResult, mode: str) -> dict:
    return {
        "completion": result.text,
        "mode": mode,
        "candidates": [asdict(c) for c in result.candidates],
        "timings": asdict(result.timings),
        **result.extra,
    }


def human(result: CompletionResult, mode: str) -> str:
    t = result.timings
    lines = [c.text for c in result.candidates[:1]] or [""]
    for i, alternative in enumerate(result.candidates[1:], start=2):
        lines.append(f"--- candidate {i}\n{alternative.text}")
    first = result.candidates[0] if result.candidates else None
    tokens, steps = (first.tokens, first.steps) if first else (0, 0)
    lines.append(
        f"--- {mode} on {result.extra.get('runtime', '?')}: {tokens} tokens in {steps} steps, "
        f"{t.total_ms:.1f} ms (encode {t.encode_ms:.1f} ms, denoise {t.denoise_ms:.1f} ms, "
        f"context {t.context_tokens} tokens, {t.reused_tokens} reused)"
    )
    return "\n".join(lines)
