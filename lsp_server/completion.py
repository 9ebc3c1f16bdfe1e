"""Plain functions from a document position to engine requests and back to shown texts.

Nothing here knows about the server object: the handlers pass in the document, the window
planner and the settings, so every step can be tested on strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from lsprotocol import types
from pygls.workspace import TextDocument

from engine.completer import CompletionRequest, CompletionResult
from lsp_server.config import Settings
from lsp_server.context import Window, WindowPlanner
from lsp_server.documents import cursor_offset
from lsp_server.postprocess import Context, postprocess


@dataclass(frozen=True)
class CursorContext:
    uri: str
    window: Window
    language: str
    head: str = ""  # text every item must start with (selectedCompletionInfo), already in prefix
    extent_setting: str = "auto"  # the `extent` setting: auto, line or block

    @cached_property
    def post(self) -> Context:
        return Context(self.window.prefix, self.window.suffix, self.language, self.extent_setting)


def cursor_context(
    document: TextDocument,
    position: types.Position,
    planner: WindowPlanner,
    settings: Settings,
    selected: types.SelectedCompletionInfo | None = None,
) -> CursorContext:
    """The window the model sees at `position`; with a selected completion-menu item, the
    window is taken as if that item were already inserted over its range."""
    text, offset, head = document.source, cursor_offset(document, position), ""
    if selected is not None:
        start, end = (
            cursor_offset(document, p) for p in (selected.range.start, selected.range.end)
        )
        head = selected.text
        text, offset = text[:start] + head + text[end:], start + len(head)
    language = document.language_id or ""
    window = plan_window(planner, document.uri, text, offset, settings, language)
    return CursorContext(document.uri, window, language, head, settings.extent)


def plan_window(
    planner: WindowPlanner, uri: str, text: str, offset: int, settings: Settings, language: str
) -> Window:
    """The window at `offset` under the context settings: the one the completion request
    and the pre-encoding on `didChange` must agree on."""
    c = settings.context
    return planner.window(
        uri, text, offset, c.budget_tokens, c.suffix_share, c.grid_lines, c.other_files, language
    )


def engine_request(context: CursorContext, settings: Settings, count: int) -> CompletionRequest:
    m = settings.model
    return CompletionRequest(
        prefix=context.window.model_prefix,
        suffix=context.window.suffix,
        max_tokens=m.max_tokens,
        num_candidates=count,
        stop_at_newline=context.post.extent == "line",
        extra=tuple((chunk.label, chunk.text) for chunk in context.window.related.chunks),
        extra_chars=len(context.window.related.text),
        **m.sampling(),
    )


def shown_texts(texts: list[str] | tuple[str, ...], context: CursorContext) -> tuple[str, ...]:
    """Post-processed, distinct, non-empty texts in model order."""
    kept: dict[str, None] = {}
    for text in texts:
        shown = postprocess(text, context.post)
        if shown is not None:
            kept.setdefault(shown)
    return tuple(kept)


def result_texts(result: CompletionResult, context: CursorContext) -> tuple[str, ...]:
    return shown_texts([c.text for c in result.candidates], context)
