"""`diffill eval context`: does context from other files help the model?

The same held-out gaps are answered twice through the server's own window planner and
settings: with the file alone, and with the other files of its folder (same extension family,
up to `--siblings`) as sources, as if the user had them open. Scored like `diffill eval`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from diffill.evaluation.evaluate import (
    Answer,
    Example,
    heldout_examples,
    load_or_build_manifest,
    score_rows,
    shown,
    table,
)
from engine.completer import Completer, CompletionRequest
from lsp_server.completion import plan_window
from lsp_server.config import Settings
from lsp_server.context import WindowPlanner
from lsp_server.related import family
from lsp_server.sources import MAX_SOURCE_CHARS, Sources
from lsp_server.watcher import read_source

LANGUAGE_IDS = {"shell": "shellscript"}  # corpus language -> LSP languageId, where they differ
ALONE, WITH_OTHERS = "file alone", "with other files"


def configure(parser: argparse.ArgumentParser) -> None:
    from engine.options import add_model_arguments

    add_model_arguments(parser)
    parser.add_argument("--manifest", type=Path, default=None, help="corpus manifest")
    parser.add_argument("--limit", type=int, default=20, help="examples per kind and language")
    parser.add_argument("--siblings", type=int, default=20, help="other files read per folder")
    parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from engine.loading import open_completer

    examples = heldout_examples(load_or_build_manifest(args.manifest), args.limit, seed=0)
    completer = open_completer(args.model, args.runtime, args.device, args.threads)
    answers: dict[str, list[Answer]] = {ALONE: [], WITH_OTHERS: []}
    chunks: dict[str, list[int]] = {ALONE: [], WITH_OTHERS: []}
    for example in examples:
        for name, sources in ((ALONE, Sources()), (WITH_OTHERS, folder_sources(example, args))):
            answer, picked = answer_in_editor(completer, example, sources, Settings())
            answers[name].append(answer)
            chunks[name].append(picked)
    label = str(completer.describe()["name"])
    rows = [{"model": label, **row} for row in score_rows(examples, answers)]
    mean_chunks = {name: statistics.mean(counts) for name, counts in chunks.items()}
    if args.json:
        print(json.dumps({"rows": rows, "mean_chunks": mean_chunks}, indent=1))
    else:
        print(table(rows))
        print(f"\nchunks of other files per request: {mean_chunks[WITH_OTHERS]:.1f}")
    return 0


def folder_sources(example: Example, args: argparse.Namespace) -> Sources:
    """The example's folder's other files of its extension family, as changed on disk."""
    sources = Sources()
    own = Path(example.path)
    siblings = [p for p in sorted(own.parent.iterdir()) if p != own and p.is_file()]
    kin = [p for p in siblings if family(str(p)) == family(str(own))][: args.siblings]
    for path in kin:
        sources.changed_on_disk(path.resolve().as_uri(), read_source(str(path), MAX_SOURCE_CHARS))
    return sources


def answer_in_editor(
    completer: Completer, example: Example, sources: Sources, settings: Settings
) -> tuple[Answer, int]:
    """The answer the server would show at the gap (the document holds prefix + suffix), and
    how many chunks of other files went before the prefix."""
    uri = Path(example.path).resolve().as_uri()
    language = LANGUAGE_IDS.get(example.language, example.language)
    planner = WindowPlanner(completer.count_tokens, sources)
    text, offset = example.prefix + example.suffix, len(example.prefix)
    window = plan_window(planner, uri, text, offset, settings, language)
    request = CompletionRequest(
        prefix=window.model_prefix,
        suffix=window.suffix,
        max_tokens=settings.model.max_tokens,
        **settings.model.sampling(),
    )
    start = time.perf_counter()
    result = completer.complete(request)
    latency = (time.perf_counter() - start) * 1000
    steps = result.candidates[0].steps if result.candidates else 0
    answer = Answer(shown(result.text, example.kind), steps, latency)
    return answer, len(window.related.chunks)
