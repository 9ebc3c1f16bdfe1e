"""`diffill eval`: fill-in-the-middle quality on held-out files, diffusion and ar side by side.

Examples come from the corpus manifest's held-out split (files never trained on), cut with
the same span logic training uses (engine.training.fim.cut_span), in a seeded order so every
run sees the same examples. Each answer is scored by exact match (trailing whitespace ignored) and
edit similarity (difflib ratio); two trivial answers, empty and `pass`, are the floor.
Single-line gaps score the answer's first line, the part an editor shows there.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import itertools
import json
import random
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from engine.completer import DEFAULT_STEPS, Completer, CompletionRequest, Length, Mode

KINDS: dict[str, str | None] = {"single-line": "line", "multi-line": "lines", "random-span": None}
BASELINES: dict[str, str] = {"empty": "", "pass": "pass"}
DEFAULT_MANIFEST = Path("data/corpus.json")
MAX_PASSES = 3


@dataclass(frozen=True)
class Example:
    path: str
    language: str
    kind: str
    prefix: str
    middle: str
    suffix: str
    start: int = -1  # the middle's character offset in the file; -1: unknown


@dataclass(frozen=True)
class Answer:
    text: str
    steps: int = 0
    latency_ms: float = 0.0


def configure(parser: argparse.ArgumentParser) -> None:
    from engine.options import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("--manifest", type=Path, default=None, help="corpus manifest")
    parser.add_argument("--limit", type=int, default=40, help="examples per span kind and language")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"most steps per block (default {DEFAULT_STEPS}, as served); 0: canvas size",
    )
    parser.add_argument(
        "--lengths",
        default="blocks",
        help="comma list of diffusion gap-length strategies to compare: blocks, predicted",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="FOLDER",
        help="another model folder scored on the same examples (repeatable)",
    )
    parser.add_argument("--prefix-chars", type=int, default=3000, help="context kept before")
    parser.add_argument("--suffix-chars", type=int, default=1000, help="context kept after")
    parser.add_argument(
        "--set",
        type=Path,
        default=None,
        metavar="FILE",
        help="a fixed example set: read it when it exists, else cut it and write it there",
    )
    parser.add_argument(
        "--no-ar", action="store_true", help="diffusion answers only (ar: a model call per token)"
    )
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from engine.options import parse_choices

    lengths = parse_choices(args.lengths, get_args(Length), "--lengths")
    examples = example_set(
        args.set, args.manifest, args.limit, args.seed, (args.prefix_chars, args.suffix_chars)
    )
    rows = score_models(
        [args.model, *args.compare],
        examples,
        {"runtime": args.runtime, "device": args.device, "threads": args.threads},
        args.max_tokens,
        args.steps or None,
        lengths,
        with_ar=not args.no_ar,
    )
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    return 0


def score_models(
    folders: list[Path | None],
    examples: list[Example],
    opening: dict,
    max_tokens: int = 48,
    max_steps: int | None = DEFAULT_STEPS,
    lengths: tuple[Length, ...] = ("blocks",),
    with_ar: bool = True,
) -> list[dict]:
    """Score rows of every model folder (opened with `opening`: runtime, device, threads) on
    the same examples; the baselines once, with the first model."""
    from engine.loading import open_completer

    rows: list[dict] = []
    for folder in folders:
        completer = open_completer(folder, **opening)
        answers = answer_all(completer, examples, max_tokens, max_steps, lengths, with_ar)
        if rows:  # the baselines do not depend on the model: once is enough
            answers = {k: v for k, v in answers.items() if k not in BASELINES}
        label = str(completer.describe()["name"])
        rows += [{"model": label, **row} for row in score_rows(examples, answers)]
    return rows


def example_set(
    fixed: Path | None,
    manifest: Path | None,
    limit: int,
    seed: int = 0,
    window: tuple[int, int] = (3000, 1000),
) -> list[Example]:
    """The held-out examples, clipped to `window` (prefix, suffix characters) as an editor
    sends them; with a `fixed` file, the same ones every time: read from it, or cut once and
    written there."""
    if fixed is not None and fixed.exists():
        return read_example_set(fixed)
    examples = heldout_examples(load_or_build_manifest(manifest), limit, seed)
    examples = [clip(e, *window) for e in examples]
    if fixed is not None:
        fixed.parent.mkdir(parents=True, exist_ok=True)
        records = [dataclasses.asdict(e) for e in examples]
        fixed.write_text(json.dumps({"examples": records}) + "\n")
    return examples


def read_example_set(path: Path) -> list[Example]:
    from engine.errors import InputError

    try:
        return [Example(**record) for record in json.loads(path.read_text())["examples"]]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(f"example set {path} is not one diffill eval wrote: {exc}") from None


def load_or_build_manifest(path: Path | None) -> dict:
    """The given manifest, else data/corpus.json, else a fresh one built as `diffill corpus`
    builds it (same roots, same deterministic held-out split)."""
    from engine.training import corpus

    if path or DEFAULT_MANIFEST.exists():
        return corpus.load_manifest(path or DEFAULT_MANIFEST)
    print(f"no {DEFAULT_MANIFEST}; collecting the default corpus", file=sys.stderr)
    languages = ("python",)
    return corpus.collect(corpus.default_roots(languages), languages, (), 0.02)


def heldout_examples(manifest: dict, limit: int, seed: int) -> list[Example]:
    """`limit` examples of each span kind for each language, from held-out files in a seeded
    order, each language taking the kinds in turn; a small held-out set is read again (new
    spans) up to MAX_PASSES times."""
    from engine.training.corpus import iter_texts

    files = sorted(manifest["files"], key=lambda entry: entry["path"])
    rng = random.Random(seed)
    rng.shuffle(files)
    languages = {entry["language"] for entry in files if entry["split"] == "heldout"}
    wanted = {(language, kind): limit for language in languages for kind in KINDS}
    turns = {language: itertools.cycle(KINDS) for language in languages}
    found: list[Example] = []
    for _ in range(MAX_PASSES):
        for entry, text in iter_texts({"files": files}, "heldout"):
            language = entry["language"]
            if not any(wanted[(language, kind)] for kind in KINDS):
                if not any(wanted.values()):
                    return found
                continue
            kind = next(k for k in turns[language] if wanted[(language, k)])
            example = cut_example(entry, text, kind, rng)
            if example is not None:
                found.append(example)
                wanted[(language, kind)] -= 1
    return found


def cut_example(entry: dict, text: str, kind: str, rng: random.Random) -> Example | None:
    from engine.training.fim import cut_span

    span = cut_span(text, rng, KINDS[kind])
    if span is None or not span.middle.strip() or not (span.prefix or span.suffix):
        return None  # a gap that is the whole file has no context for any completer to use
    return Example(
        entry["path"],
        entry["language"],
        kind,
        span.prefix,
        span.middle,
        span.suffix,
        len(span.prefix),
    )


def clip(example: Example, prefix_chars: int, suffix_chars: int) -> Example:
    """The window an editor would send: the end of the prefix, the start of the suffix."""
    prefix = example.prefix[-prefix_chars:] if prefix_chars else ""
    return Example(
        **{**example.__dict__, "prefix": prefix, "suffix": example.suffix[:suffix_chars]}
    )


def answer_sources(
    lengths: tuple[Length, ...], with_ar: bool = True
) -> dict[str, tuple[Mode, Length]]:
    """Source name -> (mode, length): `diffusion` is the blocks strategy, others are named
    `diffusion/<length>`; ar finds its own length, so it runs once (when asked: a token per
    model call, it costs more than all the diffusion sources together)."""
    sources: dict[str, tuple[Mode, Length]] = {
        "diffusion" if length == "blocks" else f"diffusion/{length}": ("diffusion", length)
        for length in lengths
    }
    return {**sources, "ar": ("ar", "blocks")} if with_ar else sources


def answer_all(
    completer: Completer,
    examples: list[Example],
    max_tokens: int,
    max_steps: int | None = None,
    lengths: tuple[Length, ...] = ("blocks",),
    with_ar: bool = True,
) -> dict[str, list[Answer]]:
    """Every answer source's answer to every example; all sources share one context encode."""
    sources = answer_sources(lengths, with_ar)
    answers: dict[str, list[Answer]] = {name: [] for name in (*sources, *BASELINES)}
    for example in examples:
        completer.prepare(example.prefix, example.suffix)  # every source is timed warm
        for name, (mode, length) in sources.items():
            request = CompletionRequest(
                example.prefix,
                example.suffix,
                max_tokens,
                mode=mode,
                max_steps=max_steps,
                length=length,
            )
            result = completer.complete(request)
            steps = result.candidates[0].steps if result.candidates else 0
            text = shown(result.text, example.kind)
            answers[name].append(Answer(text, steps, result.timings.total_ms))
        for name, text in BASELINES.items():
            answers[name].append(Answer(text))
    return answers


def shown(text: str, kind: str) -> str:
    """What an editor shows: a single-line gap gets the first line only, as the server cuts it."""
    return text.split("\n", 1)[0] if kind == "single-line" else text


def exact(answer: str, middle: str) -> bool:
    return answer.rstrip() == middle.rstrip()


def similarity(answer: str, middle: str) -> float:
    return difflib.SequenceMatcher(None, answer.rstrip(), middle.rstrip()).ratio()


def score_rows(examples: list[Example], answers: dict[str, list[Answer]]) -> list[dict]:
    """One row per (answer source, language, kind), plus an `all` kind per language."""
    rows = []
    for source, source_answers in answers.items():
        for language, kind, picked in groups(examples):
            rows.append(
                score(source, language, kind, [(examples[i], source_answers[i]) for i in picked])
            )
    return rows


def groups(examples: list[Example]) -> Iterator[tuple[str, str, list[int]]]:
    for language in sorted({e.language for e in examples}):
        for kind in (*KINDS, "all"):
            picked = [
                i
                for i, e in enumerate(examples)
                if e.language == language and kind in (e.kind, "all")
            ]
            if picked:
                yield language, kind, picked


def score(source: str, language: str, kind: str, pairs: list[tuple[Example, Answer]]) -> dict:
    latencies = [a.latency_ms for _, a in pairs]
    return {
        "answer": source,
        "language": language,
        "kind": kind,
        "examples": len(pairs),
        "exact_match": _mean([float(exact(a.text, e.middle)) for e, a in pairs]),
        "edit_similarity": _mean([similarity(a.text, e.middle) for e, a in pairs]),
        "empty_share": _mean([float(not a.text.strip()) for _, a in pairs]),
        "plausible_share": plausible_share(pairs),
        "mean_steps": _mean([float(a.steps) for _, a in pairs]),
        "latency_p50_ms": statistics.median(latencies),
    }


def plausible_share(pairs: list[tuple[Example, Answer]]) -> float | None:
    """Share of checkable answers that keep the file syntactically plausible (plausible.py)."""
    from diffill.evaluation.plausible import plausible

    checks = [plausible(e.language, e.path, e.start, e.middle, a.text) for e, a in pairs]
    known = [float(check) for check in checks if check is not None]
    return _mean(known) if known else None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def table(rows: list[dict]) -> str:
    """Markdown; a model column only when several models were scored."""
    several = len({r["model"] for r in rows}) > 1
    names = (["model"] if several else []) + ["answer", "language", "kind"]
    head = (
        "| " + " | ".join(names) + " | n | exact | edit sim | empty | plausible | steps | p50 ms |"
    )
    lines = [head, "|---" * len(names) + "|---:" * 7 + "|"]
    for r in rows:
        lines.append(
            "".join(f"| {r[name]} " for name in names) + f"| {r['examples']} "
            f"| {r['exact_match']:.1%} | {r['edit_similarity']:.3f} | {r['empty_share']:.1%} "
            f"| {_share(r['plausible_share'])} | {r['mean_steps']:.1f} "
            f"| {r['latency_p50_ms']:.1f} |"
        )
    return "\n".join(lines)
