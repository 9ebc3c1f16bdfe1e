"""FIM examples: span kinds, SPM layout, block alignment, <eom> padding, trimming."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from engine.tokenizer import load_tokenizer
from engine.tokens import EOM_ID, MIDDLE_ID, PREFIX_ID, SUFFIX_ID
from engine.training.fim import (
    IGNORE,
    PAD,
    SPAN_KINDS,
    TOKEN,
    Span,
    cut_span,
    fit_context,
    make_example,
)

TOKENIZER = load_tokenizer(Path(__file__).resolve().parents[1] / "models" / "tokenizer.json")
SOURCE = (Path(__file__).resolve().parents[1] / "engine" / "training" / "fim.py").read_text()
C, S = 16, 256


def encode(texts: list[str]) -> list[list[int]]:
    return [e.ids for e in TOKENIZER.encode_batch(texts, add_special_tokens=False)]


@pytest.mark.parametrize("kind", SPAN_KINDS)
def test_every_span_kind_cuts_the_text_where_it_says(kind: str) -> None:
    rng = random.Random(kind)
    for _ in range(50):
        span = cut_span(SOURCE, rng, kind)
        assert span is not None and span.kind == kind
        assert span.prefix + span.middle + span.suffix == SOURCE
        assert span.middle.strip(), span
        if kind == "partial_line":
            assert "\n" not in span.middle
        if kind == "line":
            assert "\n" not in span.middle and span.suffix.startswith("\n")
            assert span.prefix.endswith(("\n", " ")) and not span.middle[0].isspace()
        if kind == "lines":
            assert "\n" in span.middle
        if kind == "end_of_file":
            assert span.suffix == ""


def test_random_kinds_cover_all_and_blank_text_has_no_span() -> None:
    rng = random.Random(0)
    assert {cut_span(SOURCE, rng).kind for _ in range(100)} == set(SPAN_KINDS)
    assert cut_span("\n   \n\t\n", rng) is None


def test_layout_is_spm_with_the_middle_on_a_block_boundary() -> None:
    span = Span(
        prefix="def area(w, h):\n    return ", middle="w * h", suffix="\n\nprint(1)\n", kind="x"
    )
    example = make_example(span, encode, seq_len=S, canvas_size=C, max_middle_tokens=64)
    assert example is not None
    ids, start = example.ids.tolist(), example.middle_start
    assert len(ids) == S and start % C == 0
    suffix_ids, prefix_ids, middle_ids = encode([span.suffix, span.prefix, span.middle])
    pre_at = ids.index(PREFIX_ID)
    assert ids[0] == SUFFIX_ID and ids[start - 1] == MIDDLE_ID
    assert suffix_ids[: pre_at - 1] == ids[1:pre_at]  # suffix kept from its near end
    assert ids[pre_at + 1 : start - 1] == prefix_ids[len(prefix_ids) - (start - 2 - pre_at) :]
    assert ids[start : start + len(middle_ids)] == middle_ids
    assert example.middle_tokens == len(middle_ids)


def test_middle_is_padded_with_eom_to_whole_blocks_and_roles_mark_it() -> None:
    span = Span(prefix="x = 1\n" * 200, middle="y = 2", suffix="\nz = 3\n" * 200, kind="x")
    example = make_example(span, encode, seq_len=S, canvas_size=C, max_middle_tokens=64)
    assert example is not None
    start, m = example.middle_start, example.middle_tokens
    ids, roles = example.ids, example.roles
    assert ids[start + m] == EOM_ID and roles[start + m] == TOKEN
    assert (ids[start + m :] == EOM_ID).all()
    assert (roles[: start + m + 1] == TOKEN).all()
    assert (roles[start + m + 1 :] == PAD).all()  # long context: no filler at all
    assert (start + m + 1 + (roles == PAD).sum()) % C == 0 and start + C == S


def test_short_file_leaves_ignored_filler_after_the_middle() -> None:
    prefix = "import os\nimport sys\n\n\ndef main(argv):\n    print("
    span = Span(prefix=prefix, middle="os.sep", suffix=", argv)\n", kind="x")
    example = make_example(span, encode, seq_len=S, canvas_size=C, max_middle_tokens=64)
    assert example is not None
    used = example.middle_start + C
    assert (example.roles[used:] == IGNORE).all() and (example.roles[:used] != IGNORE).all()


def test_context_trims_suffix_far_end_first_then_prefix_far_start() -> None:
    suffix, prefix = list(range(100, 200)), list(range(300, 340))
    kept_suffix, kept_prefix = fit_context(suffix, prefix, budget=77, canvas_size=C)
    assert len(kept_suffix) + len(kept_prefix) + 3 == 80  # 77 + 3 rounded down to 5 blocks
    assert kept_prefix == prefix and kept_suffix == suffix[:37]
    kept_suffix, kept_prefix = fit_context(suffix, list(range(300, 500)), budget=93, canvas_size=C)
    assert kept_suffix == suffix[:23] and kept_prefix[-1] == 499  # a quarter stays suffix
    assert len(kept_suffix) + len(kept_prefix) + 3 == 96
    assert fit_context([], [7, 8], budget=100, canvas_size=C) is None  # not one block


def test_too_long_middle_is_rejected() -> None:
    span = Span(prefix="a = [\n", middle="1, " * 100, suffix="]\n", kind="x")
    assert make_example(span, encode, seq_len=S, canvas_size=C, max_middle_tokens=64) is None
