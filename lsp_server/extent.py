"""How far a completion may reach: the rest of one line, or a block, decided from the cursor's
surroundings the way Copilot and Tabby decide it.

Each rule is one small named function `(context) -> extent | None`; the first that answers
decides, in the order of `RULES`. The `extent` setting (`auto`, `line`, `block`) overrides them.
The server asks the engine to stop at the first line break of a `line` completion, so the
decision is made before the model runs, from the text around the cursor only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from lsp_server.postprocess.base import Context

Extent = Literal["line", "block"]
ExtentSetting = Literal["auto", "line", "block"]

BRACKET_OPENERS = ("{", "(", "[")
# Tokens that open a block at the end of a line, by LSP languageId, besides the brackets.
BLOCK_OPENERS: dict[str, tuple[str, ...]] = {
    "python": (":",),
    "javascript": ("=>",),
    "javascriptreact": ("=>",),
    "typescript": ("=>",),
    "typescriptreact": ("=>",),
    "lua": ("then", "do", "else"),
    "shellscript": ("then", "do", "else"),
    "sh": ("then", "do", "else"),
    "ruby": ("do", "then", "else"),
}
LINE_COMMENTS: dict[str, str] = {
    "python": "#",
    "shellscript": "#",
    "sh": "#",
    "ruby": "#",
    "lua": "--",
}
DEFAULT_LINE_COMMENT = "//"  # C, C++, Java, JavaScript, TypeScript, Rust, Go, ...
STRING_LITERAL = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'")


def in_comment_or_docstring(context: Context) -> Extent | None:
    """Prose: a comment or docstring line is finished a line at a time."""
    language = context.language
    if language == "python" and context.prefix.count('"""') % 2 + context.prefix.count("'''") % 2:
        return "line"
    if language not in LINE_COMMENTS and context.prefix.rfind("/*") > context.prefix.rfind("*/"):
        return "line"
    marker = LINE_COMMENTS.get(language, DEFAULT_LINE_COMMENT)
    return "line" if marker in STRING_LITERAL.sub("", context.line_prefix) else None


def mid_line(context: Context) -> Extent | None:
    """Code follows the cursor: only the rest of this line fits before it."""
    return "line" if context.mid_line else None


def empty_line(context: Context) -> Extent | None:
    """Nothing on the line yet: the user is starting new code, often several lines of it."""
    return "block" if not context.line_prefix.strip() else None


def after_block_opener(context: Context) -> Extent | None:
    """The line opens a block (`:`, `{`, `=>`, `then` ...): its body is what comes next."""
    code = context.line_prefix.rstrip()
    for opener in BRACKET_OPENERS + BLOCK_OPENERS.get(context.language, ()):
        if code.endswith(opener) and not (opener[-1].isalpha() and _word_continues(code, opener)):
            return "block"
    return None


def end_of_line(context: Context) -> Extent | None:
    """The end of an ordinary line: finish that line, nothing more."""
    return "line"


def _word_continues(code: str, word: str) -> bool:
    """`word` at the end of `code` is the tail of a longer name (`undo`, not `do`)."""
    before = code[: len(code) - len(word)]
    return bool(before) and (before[-1].isalnum() or before[-1] == "_")


ExtentRule = Callable[["Context"], Extent | None]
RULES: tuple[ExtentRule, ...] = (
    in_comment_or_docstring,
    mid_line,
    empty_line,
    after_block_opener,
    end_of_line,
)


def decide_extent(context: Context, setting: ExtentSetting = "auto") -> Extent:
    """The setting when it is not `auto`, else the first rule's answer."""
    if setting != "auto":
        return setting
    answers = (rule(context) for rule in RULES)
    return next(extent for extent in answers if extent is not None)  # end_of_line always answers
