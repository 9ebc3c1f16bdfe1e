"""A multi-line completion ends where its lines fall below the cursor line's indentation:
past that point the model is writing the next block, which the user did not ask for."""

from __future__ import annotations

from lsp_server.postprocess.base import Context, Item, indent_width


def stop_at_dedent(item: Item, context: Context) -> Item | None:
    lines = item.text.split("\n")
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() and indent_width(line) < context.indent:
            return item.with_text("\n".join(lines[:i]).rstrip(" \t\n"))
    return item
