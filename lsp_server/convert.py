"""Shown texts to LSP items: inline completion items and the completion-list fallback.

Every item's range stays on one line (the spec requires it for inline items) and carries
the `diffill.accepted` command so accepts are counted locally.
"""

from __future__ import annotations

from lsprotocol import types

from lsp_server.status import ACCEPTED_COMMAND

LABEL_CHARS = 60


def accepted_command(uri: str, text: str) -> types.Command:
    return types.Command(
        title="diffill: suggestion accepted",
        command=ACCEPTED_COMMAND,
        arguments=[{"uri": uri, "chars": len(text)}],
    )


def inline_items(
    texts: tuple[str, ...],
    uri: str,
    position: types.Position,
    selected: types.SelectedCompletionInfo | None = None,
) -> types.InlineCompletionList:
    """Items inserted at the cursor, or replacing the selected menu item's range with text
    that starts with that item (as the spec requires when selectedCompletionInfo is set)."""
    head = selected.text if selected is not None else ""
    where = selected.range if selected is not None else types.Range(position, position)
    items = [
        types.InlineCompletionItem(
            insert_text=head + text, range=where, command=accepted_command(uri, head + text)
        )
        for text in texts
    ]
    return types.InlineCompletionList(items=items)


def _label(text: str) -> str:
    first = text.strip("\n").split("\n", 1)[0].strip()
    more = "…" if len(first) > LABEL_CHARS or "\n" in text.strip("\n") else ""
    return first[:LABEL_CHARS] + more


def completion_list(
    texts: tuple[str, ...], uri: str, position: types.Position
) -> types.CompletionList:
    """The fallback for clients without inline completion: the label shows the first line,
    the text edit inserts the whole suggestion at the cursor."""
    items = [
        types.CompletionItem(
            label=_label(text),
            kind=types.CompletionItemKind.Text,
            detail="diffill",
            insert_text_format=types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(range=types.Range(position, position), new_text=text),
            sort_text=f"{rank:02d}",
            command=accepted_command(uri, text),
        )
        for rank, text in enumerate(texts)
    ]
    return types.CompletionList(is_incomplete=True, items=items)
