"""A `line` completion (lsp_server/extent.py: mid-line, the end of an ordinary line, a
comment) keeps its first line; the engine already stopped there, other backends may not."""

from __future__ import annotations

from lsp_server.postprocess.base import Context, Item


def single_line(item: Item, context: Context) -> Item | None:
    if context.extent != "line" or "\n" not in item.text:
        return item
    return item.with_text(item.text.split("\n", 1)[0])
