"""The BPE tokenizer: special ids, compact indentation, round trips, clear load errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffill.cli import main
from engine.errors import ModelLoadError
from engine.tokenizer import load_tokenizer
from engine.tokens import SPECIAL_TOKENS

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "tokenizer.json"
SOURCE = """class Shape:
    def area(self):
        if self.kind == "square":
            for side in self.sides:
                if side > 0:
                    return side * side
        return 0.0
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-token tokenizer trained through the real commands on a small tree."""
    tmp = tmp_path_factory.mktemp("tok")
    for i in range(20):
        (tmp / f"shape_{i}.py").write_text(SOURCE.replace("Shape", f"Shape{i}"))
    manifest, out = tmp / "corpus.json", tmp / "tokenizer.json"
    assert main(["corpus", "--root", str(tmp), "--out", str(manifest)]) == 0
    assert (
        main(["tokenizer", "--corpus", str(manifest), "--out", str(out), "--vocab-size", "400"])
        == 0
    )
    return out


@pytest.mark.parametrize("which", ["trained", "shipped"])
def test_special_tokens_sit_at_ids_0_to_4(which: str, trained: Path) -> None:
    tokenizer = load_tokenizer(trained if which == "trained" else SHIPPED)
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert tokenizer.encode("<fim_suffix>x<fim_middle>").ids[0] == 0


def test_indentation_runs_are_one_token(trained: Path) -> None:
    for path in (trained, SHIPPED):
        tokenizer = load_tokenizer(path)
        assert len(tokenizer.encode("\n" + " " * 16).ids) == 1, path
        assert len(tokenizer.encode("\n" + " " * 8).ids) == 1, path


def test_round_trip_is_exact(trained: Path) -> None:
    text = SOURCE + "\tweird  \t spacing\r\n  ünïcode → 🚀 0x1F600\n\n\n"
    for path in (trained, SHIPPED):
        tokenizer = load_tokenizer(path)
        assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_missing_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"tokenizer not found: .*absent\.json"):
        load_tokenizer(tmp_path / "absent.json")


def test_corrupt_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"version": "1.0", "model": ')
    with pytest.raises(ModelLoadError, match=r"tokenizer .* is corrupt"):
        load_tokenizer(bad)


def test_specials_in_the_wrong_place_are_rejected(tmp_path: Path) -> None:
    data = json.loads(SHIPPED.read_text())
    data["added_tokens"][0]["id"], data["added_tokens"][1]["id"] = 1, 0
    vocab = data["model"]["vocab"]
    vocab["<fim_suffix>"], vocab["<fim_prefix>"] = 1, 0
    swapped = tmp_path / "tokenizer.json"
    swapped.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="special token <fim_suffix> has id 1, expected 0"):
        load_tokenizer(swapped)


def test_count_only_reports_tokens_per_split(trained: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = trained.parent / "corpus.json"
    argv = ["tokenizer", "--corpus", str(manifest), "--out", str(trained), "--count-only"]
    capsys.readouterr()
    assert main(argv) == 0
    counts = json.loads(capsys.readouterr().out)["tokens"]
    tokenizer = load_tokenizer(trained)
    files = json.loads(manifest.read_text())["files"]
    expected = sum(len(tokenizer.encode(Path(f["path"]).read_text()).ids) for f in files)
    assert counts["train"] + counts["heldout"] == expected > 0


def test_a_corpus_without_train_files_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "empty").mkdir()
    manifest = tmp_path / "corpus.json"
    assert main(["corpus", "--root", str(tmp_path / "empty"), "--out", str(manifest)]) == 0
    assert main(["tokenizer", "--corpus", str(manifest), "--out", str(tmp_path / "t.json")]) == 2
    assert "has no train files" in capsys.readouterr().err
    assert main(["tokenizer", "--corpus", str(tmp_path / "nope.json")]) == 2
    assert "corpus manifest not found" in capsys.readouterr().err
