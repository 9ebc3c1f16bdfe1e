"""Indent the completion's new lines the way the document does: tabs or spaces, same width."""

from __future__ import annotations

import re
from collections import Counter

from lsp_server.postprocess.base import Context, Item

DEFAULT_WIDTH = 4


def _document_style(text: str) -> tuple[bool, int]:
    """(uses tabs, space indent width) from the indented lines around the cursor."""
    leads = re.findall(r"^([ \t]+)\S", text, flags=re.MULTILINE)
    tabs = sum(lead.startswith("\t") for lead in leads)
    widths = Counter(len(lead) for lead in leads if lead.startswith(" "))
    width = min(widths, default=DEFAULT_WIDTH)
    return tabs > len(leads) - tabs, width if width in (2, 3, 4, 8) else DEFAULT_WIDTH


def _reindent(line: str, tabs: bool, width: int) -> str:
    lead = line[: len(line) - len(line.lstrip(" \t"))]
    columns = sum(width if ch == "\t" else 1 for ch in lead)
    new = "\t" * (columns // width) + " " * (columns % width) if tabs else " " * columns
    return new + line[len(lead) :]


def match_indentation(item: Item, context: Context) -> Item | None:
    tabs, width = _document_style(context.prefix + context.suffix)
    lines = item.text.split("\n")
    fixed = [lines[0], *(_reindent(line, tabs, width) for line in lines[1:])]
    return item.with_text("\n".join(fixed))
