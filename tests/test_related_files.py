"""Chunks of other files in the context: splitting, scoring, the token budget, the header
comment, the store of other files, and the stability of the pick while typing.

Token counts come from the project's real tokenizer (models/tokenizer.json)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from lsp_server import related
from lsp_server.context import WindowPlanner
from lsp_server.sources import MAX_SOURCE_CHARS, MAX_SOURCES, SETTLE_S, Sources
from lsp_server.watcher import read_source

TOKENIZER = Path(__file__).resolve().parent.parent / "models" / "tokenizer.json"
PACKETS = "".join(
    [
        "import struct\n\n\n",
        "def parse_header(packet: bytes) -> dict:\n",
        '    kind, length, checksum = struct.unpack(">BHI", packet[:7])\n',
        '    return {"kind": kind, "length": length, "checksum": checksum}\n',
        *(f"\n\ndef unrelated_{i}(a, b):\n    return a * {i} + b\n" for i in range(6)),
        "\n\ndef verify_checksum(header: dict, body: bytes) -> bool:\n",
        '    return header["checksum"] == crc32_of(body)\n',
    ]
)
CURSOR_FILE = (
    "from packets import parse_header\n\nheader = parse_header(data)\nif header['kind'] == 2:\n"
)


@pytest.fixture(scope="module")
def count():
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_chunks_are_overlapping_line_windows_with_names():
    text = "".join(f"line_{i} = {i}\n" for i in range(40)) + "\n" * 20
    chunks = related.split_chunks("m.py", text)
    assert [c.first_line for c in chunks] == [0, 8, 16, 24, 32]  # the blank tail has no names
    lines = text.splitlines(keepends=True)
    for chunk in chunks:
        assert chunk.text == "".join(lines[chunk.first_line : chunk.first_line + 16])
    assert chunks[1].where == "m.py:9-24"


def test_a_short_file_is_one_chunk_ending_with_a_line_break():
    (chunk,) = related.split_chunks("s.py", "x = compute(1)")
    assert chunk.text == "x = compute(1)\n" and chunk.first_line == 0


def test_identifiers_drop_keywords_and_single_letters():
    assert related.identifiers("def f(self, packet): return packet.size if x else None") == {
        "packet",
        "size",
    }


def test_the_chunk_sharing_the_cursors_names_scores_best(count):
    chunks = related.split_chunks("packets.py", PACKETS)
    query = related.query_names(CURSOR_FILE, "")
    (best,) = related.pick(chunks, query, 150, count, "python")
    assert "def parse_header" in best.text
    assert related.jaccard(best.names, query) > max(
        related.jaccard(c.names, query) for c in chunks if "parse_header" not in c.text
    )


def test_picks_fit_the_budget_and_never_overlap(count):
    chunks = related.split_chunks("packets.py", PACKETS)
    query = related.query_names(CURSOR_FILE + "verify_checksum(header, body)\n", "")
    for budget in (0, 40, 90, 400):
        picked = related.pick(chunks, query, budget, count, "python")
        assert count(related.render(picked, "python").text) <= budget + len(picked)
        firsts = sorted(c.first_line for c in picked)
        assert all(b - a >= related.CHUNK_LINES for a, b in itertools.pairwise(firsts))
    assert len(related.pick(chunks, query, 400, count, "python")) >= 2


def test_unrelated_code_is_not_picked(count):
    chunks = related.split_chunks("other.py", "total_rows = sum(widths)\nprint(total_rows)\n")
    assert related.pick(chunks, related.query_names(CURSOR_FILE, ""), 500, count, "python") == ()


def test_header_uses_the_documents_line_comment():
    assert related.header("pkg/x.py", "python") == "# path: pkg/x.py\n"
    assert related.header("src/a.ts", "typescript") == "// path: src/a.ts\n"
    assert related.header("a.c", "c") == "// path: a.c\n"
    assert related.header("notes.txt", "plaintext") == "path: notes.txt\n"


def test_render_puts_the_best_chunk_last_under_its_header():
    best, second = related.split_chunks("b.py", "alpha = 1\n" * 30)[:2]
    rendered = related.render((best, second), "python")
    assert rendered.chunks == (second, best)
    assert rendered.text == f"# path: b.py\n{second.text}\n# path: b.py\n{best.text}\n"


def test_sources_skip_open_documents_on_disk_and_unusable_files():
    sources = Sources()
    sources.opened("file:///w/a.py", "alpha = 1\n")
    sources.changed_on_disk("file:///w/a.py", "a = 2  # saved by a formatter\n")
    sources.changed_on_disk("file:///w/big.py", "x" * (MAX_SOURCE_CHARS + 1))
    sources.changed_on_disk("file:///w/blob.bin", "\x00\x01")
    sources.changed_on_disk("file:///w/my%20lib.py", "lib = 1\n")
    assert sources.labels() == ["my lib.py", "a.py"]
    assert [c.text for c in sources.chunks("file:///w/my lib.py")] == ["alpha = 1\n"]
    sources.changed_on_disk("file:///w/my lib.py", None)  # deleted
    assert sources.labels() == ["a.py"] and not sources.has_others("file:///w/a.py")


def test_sources_keep_the_most_recent_files_relative_to_the_root():
    sources = Sources()
    sources.roots = ("/w",)
    for i in range(MAX_SOURCES + 2):
        sources.changed_on_disk(f"file:///w/pkg/m{i}.py", f"value_{i} = {i}\n")
    labels = sources.labels()
    assert len(labels) == MAX_SOURCES and labels[0] == f"pkg/m{MAX_SOURCES + 1}.py"
    assert "pkg/m0.py" not in labels and "pkg/m1.py" not in labels


def test_a_change_counts_once_it_has_settled():
    clock = Clock()
    sources = Sources(clock)
    sources.opened("file:///w/b.py", "old_name = 1\n")
    before = sources.signature("file:///w/a.py")
    sources.update("file:///w/b.py", "new_name = 1\n")
    assert sources.signature("file:///w/a.py") == before
    assert sources.chunks("file:///w/a.py")[0].text == "old_name = 1\n"
    clock.now += SETTLE_S
    assert sources.signature("file:///w/a.py") != before
    assert sources.chunks("file:///w/a.py")[0].text == "new_name = 1\n"


def _planner(count, clock: Clock) -> tuple[WindowPlanner, Sources]:
    sources = Sources(clock)
    sources.roots = ("/w",)
    sources.opened("file:///w/packets.py", PACKETS)
    return WindowPlanner(count, sources), sources


def _window(planner: WindowPlanner, text: str, other_files: float = 0.25):
    return planner.window("file:///w/a.py", text, len(text), 800, 0.25, 8, other_files, "python")


def test_the_pick_holds_while_typing_on_the_same_start_line(count):
    clock = Clock()
    planner, sources = _planner(count, clock)
    text = CURSOR_FILE + "    "
    first = _window(planner, text)
    assert first.related.text.startswith("# path: packets.py\n")
    assert first.model_prefix == first.related.text + text
    for char in "verify_checksum(header, payload)":
        text += char
        window = _window(planner, text)  # the query changes, the pick must not
        assert window.related is first.related and window.start_line == first.start_line
    sources.update("file:///w/packets.py", PACKETS + "\ndef crc32_of(body):\n    return 0\n")
    assert _window(planner, text).related is first.related  # not settled yet
    clock.now += SETTLE_S
    assert "crc32_of" in _window(planner, text).related.text


def test_other_files_take_their_share_of_the_budget_and_zero_turns_them_off(count):
    planner, _ = _planner(count, Clock())
    text = "# parse_header(packet) gives kind, length and checksum\n" * 200
    with_others = _window(planner, text)
    assert count(with_others.prefix) + count(with_others.suffix) <= 600
    assert 0 < count(with_others.related.text) <= 200 + len(with_others.related.chunks)
    planner.forget("file:///w/a.py")
    alone = _window(planner, text, other_files=0.0)
    assert alone.related.text == "" and count(alone.prefix) > count(with_others.prefix)


def test_read_source_refuses_binary_big_and_non_utf8_files(tmp_path):
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "nul.py").write_bytes(b"x = 1\x00\n")
    (tmp_path / "latin.py").write_bytes("caf\xe9 = 1\n".encode("latin-1"))
    (tmp_path / "big.py").write_text("x = 1\n" * 100)
    assert read_source(str(tmp_path / "ok.py"), 1000) == "x = 1\n"
    for name in ("nul.py", "latin.py", "big.py", "gone.py"):
        assert read_source(str(tmp_path / name), 500) is None, name
    assert read_source(str(tmp_path), 1000) is None  # a folder


def test_families_of_extensions():
    assert related.family("src/a.tsx") == related.family("lib/b.js")
    assert related.family("x.h") == related.family("x.cpp")
    assert related.family("x.py") != related.family("README.md")
    assert related.related_kinds(related.family("untitled:Untitled-1"), related.family("a.md"))


def test_a_document_borrows_only_from_its_family():
    sources = Sources()
    sources.opened("file:///w/README.md", "Call parse_header(packet) first.\n")
    assert not sources.has_others("file:///w/a.py")
    sources.changed_on_disk(
        "file:///w/packets.pyi", "def parse_header(packet: bytes) -> dict: ...\n"
    )
    assert [c.label for c in sources.chunks("file:///w/a.py")] == ["packets.pyi"]
    assert {c.label for c in sources.chunks("untitled:Untitled-1")} == {
        "packets.pyi",
        "README.md",
    }
