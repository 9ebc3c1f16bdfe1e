"""Mid-line, only the rest of the current line makes sense: keep the first line."""

from __future__ import annotations

from lsp_server.postprocess.base import Context, Item


def single_line(item: Item, context: Context) -> Item | None:
    if not context.mid_line or "\n" not in item.text:
        return item
    return item.with_text(item.text.split("\n", 1)[0])
