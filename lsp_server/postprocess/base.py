"""The contract every post-processing rule follows: `(item, context) -> item | None`.

A rule returns the item unchanged, a copy with new text (`item.with_text`), or None to drop
it. Items and contexts are frozen so no rule can change what the next one sees behind its back.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from lsp_server.extent import Extent, ExtentSetting, decide_extent


@dataclass(frozen=True)
class Item:
    text: str

    def with_text(self, text: str) -> Item:
        return dataclasses.replace(self, text=text)


@dataclass(frozen=True)
class Context:
    prefix: str  # the text before the cursor that the model saw
    suffix: str  # the text after it
    language: str = ""
    extent_setting: ExtentSetting = "auto"  # the user's override of the extent rules

    @cached_property
    def line_prefix(self) -> str:
        return self.prefix[self.prefix.rfind("\n") + 1 :]

    @cached_property
    def line_suffix(self) -> str:
        end = self.suffix.find("\n")
        return self.suffix if end < 0 else self.suffix[:end]

    @cached_property
    def mid_line(self) -> bool:
        """Code (not just closing brackets or punctuation) follows the cursor on its line."""
        return re.search(r"\w", self.line_suffix) is not None

    @cached_property
    def extent(self) -> Extent:
        """One line or a block (lsp_server/extent.py): what the completion may fill."""
        return decide_extent(self, self.extent_setting)

    @cached_property
    def indent(self) -> int:
        """Indentation width of the cursor's line."""
        line = self.line_prefix + self.line_suffix
        return indent_width(line) if line.strip() else len(self.line_prefix)


def indent_width(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


Rule = Callable[[Item, Context], Item | None]
