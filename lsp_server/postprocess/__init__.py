"""Post-processing of model output, in one ordered list.

The order matters: cut to one line before looking at overlaps, trim what the suffix holds
before balancing brackets (an auto-closed `)` is not unbalanced), re-indent in the document's
style before comparing indentation for the dedent stop, and drop empty items only after every
rule that can shorten one.
"""

from __future__ import annotations

from lsp_server.postprocess.balance_brackets import balance_brackets
from lsp_server.postprocess.base import Context, Item, Rule
from lsp_server.postprocess.drop_empty import drop_empty
from lsp_server.postprocess.indentation import match_indentation
from lsp_server.postprocess.single_line import single_line
from lsp_server.postprocess.stop_at_dedent import stop_at_dedent
from lsp_server.postprocess.trim_suffix import trim_suffix

RULES: tuple[Rule, ...] = (
    single_line,
    trim_suffix,
    balance_brackets,
    match_indentation,
    stop_at_dedent,
    drop_empty,
)


def postprocess(text: str, context: Context, rules: tuple[Rule, ...] = RULES) -> str | None:
    """The text to show for one model output, or None when nothing worth showing remains."""
    item: Item | None = Item(text)
    for rule in rules:
        item = rule(item, context)
        if item is None:
            return None
    return item.text


__all__ = ["RULES", "Context", "Item", "postprocess"]
