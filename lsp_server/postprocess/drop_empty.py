"""An all-whitespace suggestion shows nothing useful and hides the cursor's neighbourhood."""

from __future__ import annotations

from lsp_server.postprocess.base import Context, Item


def drop_empty(item: Item, context: Context) -> Item | None:
    return item if item.text.strip() else None
