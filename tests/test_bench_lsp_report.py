"""The pieces of `diffill bench lsp` that decide what it measures and where it writes."""

from pathlib import Path

from diffill.evaluation.bench_lsp import (
    SECTION_END,
    SECTION_START,
    Position,
    half_line_cut,
    line_end_positions,
    plot_path,
    write_section,
)


def test_section_is_replaced_and_the_rest_of_the_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nintro\n\n## other\n\nfamily table\n")
    write_section(path, "first run\n")
    write_section(path, "second run\n")
    text = path.read_text()
    assert text.count(SECTION_START) == 1 and text.count(SECTION_END) == 1
    assert "second run" in text and "first run" not in text
    assert text.startswith("# Benchmarks\n\nintro") and "family table" in text


def test_half_line_cut_leaves_code_after_the_cursor() -> None:
    code = "result = compute(alpha, beta)"
    cut = half_line_cut(code)
    assert cut is not None and 4 <= cut < len(code)
    assert any(ch.isalnum() for ch in code[cut:])
    assert half_line_cut("x = )") is None


def test_line_end_positions_type_the_whole_line_with_nothing_after_it() -> None:
    mid = Position("a.py", "x = 1\n    ", "total = ", "price * 2\nprint(total)\n")
    (end,) = line_end_positions([mid])
    assert end.typed == "total = price * 2" and end.after == "\nprint(total)\n"
    assert end.before + end.typed + end.after == mid.before + mid.typed + mid.after


def test_a_run_written_elsewhere_keeps_its_plot_beside_it() -> None:
    assert plot_path(Path("BENCHMARKS.md"), None) == Path("docs/img/bench-lsp.png")
    assert plot_path(Path("/tmp/compare.md"), None) == Path("/tmp/compare.png")
    assert plot_path(Path("/tmp/compare.md"), Path("x.png")) == Path("x.png")
