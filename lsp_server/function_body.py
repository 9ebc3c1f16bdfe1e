"""Find the Python function around a position whose body is only a placeholder.

A placeholder body is `pass`, `...` or `raise NotImplementedError(...)`, after an optional
docstring, or a docstring alone. The file around the function may not parse (the user is in
the middle of editing it), so only the function itself is parsed: `tokenize` finds where it
ends (strings, brackets and comments handled), then `ast` checks its body.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass

DEF = re.compile(r"[ \t]*(?:async[ \t]+)?def[ \t]")
MAX_LINES = 200  # a stub function is short; longer ones are never placeholder-only


@dataclass(frozen=True)
class Placeholder:
    start: int  # offset in the source of the text the body replaces
    end: int
    lead: str  # inserted before the body: a line break and indentation after a lone docstring


def find_placeholder(source: str, offset: int) -> Placeholder | None:
    """The placeholder of the innermost function holding `offset`, if its body is one."""
    lines = source.splitlines(keepends=True)
    row = _row_of(lines, offset)
    for top in range(min(row, len(lines) - 1), max(row - MAX_LINES, -1), -1):
        if not DEF.match(lines[top]):
            continue
        count = _function_rows(lines, top)
        if count is not None and row < top + count:
            return _placeholder(lines, top, count)
    return None


def _row_of(lines: list[str], offset: int) -> int:
    seen = 0
    for row, line in enumerate(lines):
        seen += len(line)
        if offset < seen:
            return row
    return len(lines)


def _function_rows(lines: list[str], top: int) -> int | None:
    """How many lines the function defined at `top` spans, trailing blank lines excluded;
    None for a one-line function, one cut off by the window, or text that does not tokenize."""
    window = lines[top : top + MAX_LINES]
    whole = top + len(window) == len(lines)
    depth, base, last, opened = 0, None, 0, False
    try:
        for token in tokenize.generate_tokens(io.StringIO("".join(window)).readline):
            if token.type in (tokenize.COMMENT, tokenize.NL):
                continue
            if base is not None and not opened:
                if token.type != tokenize.INDENT:
                    return None  # the body shares the def line
                opened = True
            if token.type == tokenize.NEWLINE:
                base, last = depth if base is None else base, token.start[0]
            depth += (token.type == tokenize.INDENT) - (token.type == tokenize.DEDENT)
            if opened and depth <= base:
                return last if whole or token.line else None  # no line: the window ran out
    except (tokenize.TokenError, SyntaxError):
        return None
    return None


def _placeholder(lines: list[str], top: int, count: int) -> Placeholder | None:
    """The placeholder of the function in lines[top : top + count], if its body is one."""
    snippet = "".join(lines[top : top + count])
    indented = lines[top][:1] in (" ", "\t")
    try:
        tree = ast.parse("if 1:\n" + snippet if indented else snippet)
    except SyntaxError:
        return None
    node = tree.body[0].body[0] if indented else tree.body[0]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    shift = top - 1 - indented  # ast rows are 1-based and count the `if 1:` line
    body = node.body
    if len(body) == 1 and _is_docstring(body[0]):
        doc = body[0]
        return _after(lines, shift + doc.lineno, shift + doc.end_lineno, doc.col_offset)
    if len(body) <= 2 and _is_stub(body[-1]) and (len(body) == 1 or _is_docstring(body[0])):
        stub = body[-1]
        return _replacing(lines, shift + stub.lineno, shift + stub.end_lineno, stub.col_offset)
    return None


def _is_docstring(stmt: ast.stmt) -> bool:
    value = stmt.value if isinstance(stmt, ast.Expr) else None
    return isinstance(value, ast.Constant) and isinstance(value.value, str)


def _is_stub(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, ast.Constant) and stmt.value.value is Ellipsis
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def _start(lines: list[str], row: int) -> int:
    return sum(len(line) for line in lines[:row])


def _content_end(lines: list[str], row: int) -> int:
    """Offset of the end of line `row`, before its line break."""
    return _start(lines, row) + len(lines[row].rstrip("\r\n"))


def _replacing(lines: list[str], first: int, last: int, column: int) -> Placeholder | None:
    """The stub statement on rows first..last, from its first character to the end of its
    last line (a trailing `# TODO` goes with it); None when code precedes it on its line
    (`column` counts bytes, but when only indentation precedes it, that is ASCII)."""
    if lines[first][:column].strip(" \t"):
        return None
    return Placeholder(_start(lines, first) + column, _content_end(lines, last), "")


def _after(lines: list[str], first: int, last: int, column: int) -> Placeholder | None:
    """An insertion after a lone docstring on rows first..last, on a new line indented as
    the docstring is (`column` counts bytes, but the indentation before it is ASCII)."""
    indent = lines[first][:column]
    if indent.strip(" \t"):
        return None
    end = _content_end(lines, last)
    ending = lines[last][len(lines[last].rstrip("\r\n")) :] or "\n"
    return Placeholder(end, end, ending + indent)
