"""Chunks of other files for the context: split, score against the cursor, pick, render.

Like Copilot's "neighboring tabs": other files are cut into overlapping line windows, each
window is scored by the Jaccard similarity of its identifier set with the code around the
cursor, and the best ones that fit a token budget go before the prefix, each under a comment
line naming its path (Tabby's snippets-as-comments). Plain functions, no server: everything
here is tested on strings.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

CHUNK_LINES = 16  # lines per chunk
CHUNK_STRIDE = 8  # chunks overlap by half, so a definition is rarely cut in two
QUERY_LINES = 20  # lines before the cursor (and a few after) that chunks are scored against
MIN_SCORE = 0.05  # below this a chunk shares only incidental names with the cursor's code
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]+")
KEYWORDS = """
and as async await break case catch class const continue def default del do elif else enum
except export extends false final finally fn for from func function if impl import in is let
match mut new nil none not null or pass pub public private protected raise return self static
struct super switch this throw true try type use var void while with yield True False None
"""
STOP_WORDS = frozenset(KEYWORDS.split())  # shared by unrelated code in most languages
LINE_COMMENTS = {
    "#": "python shellscript sh bash zsh fish ruby perl r yaml toml dockerfile makefile "
    "elixir julia coffeescript powershell cmake nim crystal gdscript",
    "//": "c cpp objective-c objective-cpp cuda-cpp csharp java javascript javascriptreact "
    "typescript typescriptreact go rust swift kotlin scala dart php groovy jsonc zig "
    "solidity proto glsl hlsl",
    "--": "lua sql haskell elm purescript ada vhdl",
    ";": "clojure lisp scheme racket fennel",
    "%": "erlang latex tex matlab prolog",
}
COMMENT_FOR = {lang: mark for mark, langs in LINE_COMMENTS.items() for lang in langs.split()}
FAMILIES = (  # extensions whose files lend each other chunks (other extensions: only their own)
    ".c .h .cc .cpp .cxx .c++ .hpp .hh .hxx .cu .cuh .m .mm",
    ".js .jsx .mjs .cjs .ts .tsx .mts .cts .vue .svelte",
    ".py .pyi .pyx .pxd",
    ".sh .bash .zsh",
)
FAMILY_OF = {ext: family.split()[0] for family in FAMILIES for ext in family.split()}


@dataclass(frozen=True)
class Chunk:
    label: str  # the path shown in the header line
    first_line: int  # 0-based line of the chunk's first line in its file
    text: str  # whole lines, ending with a line break
    names: frozenset[str]

    @property
    def where(self) -> str:
        """`path:first-last` with 1-based lines, for logs and `diffill/status`."""
        return f"{self.label}:{self.first_line + 1}-{self.first_line + self.text.count(chr(10))}"


@dataclass(frozen=True)
class Related:
    """The rendered chunks that go before the prefix, and where they came from."""

    text: str = ""
    chunks: tuple[Chunk, ...] = ()


NOTHING = Related()


@functools.lru_cache(maxsize=1024)
def family(path: str) -> str:
    """What a file's chunks may go to: files of the same family of extensions (Copilot's
    neighboring tabs likewise keep to the document's language); "" for no extension."""
    extension = os.path.splitext(path)[1].lower()
    return FAMILY_OF.get(extension, extension)


def related_kinds(a: str, b: str) -> bool:
    """Whether files of families `a` and `b` lend each other chunks (no extension: any)."""
    return a == b or not a or not b


def identifiers(text: str) -> frozenset[str]:
    """Names of two or more characters, keywords dropped: what two pieces of code share."""
    return frozenset(IDENTIFIER.findall(text)) - STOP_WORDS


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


def split_chunks(label: str, text: str) -> tuple[Chunk, ...]:
    """Windows of CHUNK_LINES lines every CHUNK_STRIDE lines; windows without names dropped."""
    lines = text.splitlines(keepends=True)
    chunks = []
    for first in range(0, max(len(lines) - CHUNK_STRIDE, 1), CHUNK_STRIDE):
        body = "".join(lines[first : first + CHUNK_LINES])
        names = identifiers(body)
        if names:
            body = body if body.endswith("\n") else body + "\n"
            chunks.append(Chunk(label, first, body, names))
    return tuple(chunks)


def query_names(prefix: str, suffix: str) -> frozenset[str]:
    """The identifiers of the code around the cursor: the last QUERY_LINES lines before it
    and the rest of its line with a few lines after."""
    start = len(prefix)
    for _ in range(QUERY_LINES):
        start = prefix.rfind("\n", 0, start)
        if start < 0:
            break
    end = 0
    for _ in range(QUERY_LINES // 4):
        end = suffix.find("\n", end + 1)
        if end < 0:
            end = len(suffix)
            break
    return identifiers(prefix[max(start, 0) :] + suffix[:end])


def header(label: str, language: str) -> str:
    """The line naming a chunk's path, as a comment of the document's language if known."""
    mark = COMMENT_FOR.get(language)
    return f"{mark} path: {label}\n" if mark else f"path: {label}\n"


def pick(
    chunks: Iterable[Chunk],
    query: frozenset[str],
    budget: int,
    count: Callable[[str], int],
    language: str,
) -> tuple[Chunk, ...]:
    """The best-scoring chunks whose rendering fits `budget` tokens, at most one of any two
    overlapping windows of a file; ties go to the earlier source (the more recent file)."""
    scored = [(jaccard(c.names, query), -i, c) for i, c in enumerate(chunks)]
    scored.sort(key=lambda entry: entry[:2], reverse=True)
    picked: list[Chunk] = []
    used = 0
    for score, _, chunk in scored:
        if score < MIN_SCORE or used >= budget:
            break
        cost = sum(map(count, _rendered(chunk, language).splitlines(keepends=True)))
        if used + cost <= budget and not any(_overlap(chunk, p) for p in picked):
            picked.append(chunk)
            used += cost
    return tuple(picked)


def _overlap(a: Chunk, b: Chunk) -> bool:
    return a.label == b.label and abs(a.first_line - b.first_line) < CHUNK_LINES


def render(chunks: tuple[Chunk, ...], language: str) -> Related:
    """The picked chunks as text for the start of the prefix, the best one last (nearest the
    code being written), each under its header line and followed by a blank line."""
    ordered = chunks[::-1]
    return Related("".join(_rendered(c, language) for c in ordered), ordered)


def _rendered(chunk: Chunk, language: str) -> str:
    return header(chunk.label, language) + chunk.text + "\n"
