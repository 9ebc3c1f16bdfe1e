"""Code actions, as plain functions: from a document and a range to the engine request and
back to a WorkspaceEdit. Nothing here knows about the server object.

Two actions, both of kind `refactor.rewrite`:
- "Rewrite selection with diffill": the selection is the gap; the model fills it again.
- "Fill function body with diffill": the placeholder body of the Python function around the
  cursor (`pass`, `...`, `raise NotImplementedError`, after a docstring or not) is the gap.

Listing them runs no model: clients that resolve code actions get each action with `data`
naming the document version and the text to replace, and `codeAction/resolve` runs the model.
Other clients get the edit computed at once, only when they ask explicitly (a lightbulb that
asks on every cursor move would run the model each time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, astuple, dataclass
from typing import NoReturn

from lsprotocol import types
from pygls.exceptions import JsonRpcContentModified, JsonRpcInternalError
from pygls.workspace import TextDocument

from engine.completer import CompletionRequest
from engine.errors import InputError
from lsp_server.config import Settings
from lsp_server.context import build_window
from lsp_server.documents import cursor_offset
from lsp_server.function_body import find_placeholder
from lsp_server.postprocess import RULES, Context, Rule, postprocess
from lsp_server.postprocess.base import indent_width
from lsp_server.postprocess.single_line import single_line
from lsp_server.postprocess.stop_at_dedent import stop_at_dedent

KIND = types.CodeActionKind.RefactorRewrite
OPTIONS = types.CodeActionOptions(code_action_kinds=[KIND], resolve_provider=True)
TITLES = {"rewrite": "Rewrite selection with diffill", "fill": "Fill function body with diffill"}
GROWTH = 1.5  # a rewrite may run this much longer than the selection, in tokens
MIN_TOKENS = 8  # room for a rewrite of a very short selection


@dataclass(frozen=True)
class Offer:
    """One action on one version of a document: replace source[start:end] by lead + text."""

    kind: str  # a key of TITLES
    uri: str
    version: int | None
    start: int
    end: int
    lead: str = ""  # a line break and indentation when the body goes after a lone docstring


@dataclass(frozen=True)
class Gap:
    """What the model fills for an offer, and how its answer is cleaned up."""

    prefix: str
    suffix: str
    replaced: str  # the document text the answer replaces
    max_tokens: int
    rules: tuple[Rule, ...]
    language: str = ""

    @property
    def post(self) -> Context:
        return Context(self.prefix, self.suffix, self.language)


def offers(
    document: TextDocument, where: types.Range, only: Sequence[str] | None = None
) -> list[Offer]:
    """The actions that apply at `where`; InputError when the range is not in the document."""
    start, end = (cursor_offset(document, p) for p in (where.start, where.end))
    if end < start:
        raise InputError(f"range end {_shown(where.end)} is before its start {_shown(where.start)}")
    if not wanted(only):
        return []
    found = [Offer("rewrite", document.uri, document.version, start, end)] if end > start else []
    placeholder = find_placeholder(document.source, start) if _is_python(document) else None
    if placeholder is not None:
        found.append(Offer("fill", document.uri, document.version, *astuple(placeholder)))
    return found


def wanted(only: Sequence[str] | None) -> bool:
    """The client's `only` filter admits our kind (kinds are hierarchical: `refactor` does)."""
    kinds = [str(getattr(kind, "value", kind)) for kind in only or ()]
    return not kinds or any(KIND.value == k or KIND.value.startswith(k + ".") for k in kinds)


def _is_python(document: TextDocument) -> bool:
    return document.language_id == "python" or document.uri.endswith((".py", ".pyi"))


def _shown(position: types.Position) -> str:
    return f"{position.line}:{position.character}"


def resolves_lazily(capabilities: types.ClientCapabilities) -> bool:
    """The client resolves actions' edits and sends their data back (both are needed)."""
    text = capabilities.text_document
    action = text.code_action if text else None
    support = action.resolve_support if action else None
    return bool(support and "edit" in support.properties and action.data_support)


def gap(
    document: TextDocument, offer: Offer, count_tokens: Callable[[str], int], settings: Settings
) -> Gap:
    """The token-budgeted window around the replaced text, as if it were already removed;
    InputError for a selection longer than the model may write (the rest would be lost)."""
    source = document.source
    text = source[: offer.start] + offer.lead + source[offer.end :]
    c = settings.context
    offset = offer.start + len(offer.lead)
    window = build_window(text, offset, count_tokens, c.budget_tokens, c.suffix_share, c.grid_lines)
    replaced, limit = source[offer.start : offer.end], settings.model.max_tokens
    if offer.kind == "fill":
        rules, tokens = RULES, limit
    else:
        rules = rewrite_rules(replaced, Context(window.prefix, window.suffix))
        size = count_tokens(replaced)
        if size > limit:
            raise InputError(
                f"the selection is {size} tokens, over the {limit} the model may write "
                "(setting model.maxTokens): select less"
            )
        tokens = min(limit, max(MIN_TOKENS, math.ceil(size * GROWTH)))
    return Gap(window.prefix, window.suffix, replaced, tokens, rules, document.language_id or "")


def rewrite_rules(selected: str, post: Context) -> tuple[Rule, ...]:
    """The inline rules, except that a multi-line selection may be rewritten over several
    lines, and as far left as the selection itself reaches."""
    if "\n" not in selected:
        return RULES
    lines = selected.split("\n")[1:]
    dedents = any(line.strip() and indent_width(line) < post.indent for line in lines)
    dropped = (single_line, stop_at_dedent) if dedents else (single_line,)
    return tuple(rule for rule in RULES if rule not in dropped)


def engine_request(gap: Gap, settings: Settings) -> CompletionRequest:
    return CompletionRequest(
        prefix=gap.prefix,
        suffix=gap.suffix,
        max_tokens=gap.max_tokens,
        **settings.model.sampling(),
    )


def replacement(text: str, gap: Gap) -> str | None:
    """The model's text cleaned up, ending with the whitespace the replaced text ended with;
    None when nothing is left or it says what the document already says."""
    shown = postprocess(text, gap.post, gap.rules)
    if shown is None:
        return None
    body = gap.replaced.rstrip(" \t\r\n")
    shown = shown.rstrip(" \t\r\n") + gap.replaced[len(body) :]
    return shown if shown.strip() and shown.strip() != body.strip() else None


def action(document: TextDocument, offer: Offer, text: str | None = None) -> types.CodeAction:
    """The action for `offer`: with its edit once `text` is known, else with data to resolve."""
    found = types.CodeAction(title=TITLES[offer.kind], kind=KIND)
    if text is None:
        found.data = asdict(offer)
    else:
        edit = types.TextEdit(range=_range(document, offer), new_text=offer.lead + text)
        found.edit = types.WorkspaceEdit(changes={offer.uri: [edit]})
    return found


def _range(document: TextDocument, offer: Offer) -> types.Range:
    return types.Range(_position(document, offer.start), _position(document, offer.end))


def _position(document: TextDocument, offset: int) -> types.Position:
    """The client position (in the negotiated encoding) of an offset into the source."""
    lines, row, seen = document.lines, 0, 0
    while row < len(lines) and seen + len(lines[row].rstrip("\r\n")) < offset:
        seen, row = seen + len(lines[row]), row + 1
    server = types.Position(line=row, character=offset - seen)
    return document.position_codec.position_to_client_units(lines, server)


def offer_from(data: object) -> Offer:
    """The offer a resolve request's data names, checked: the data comes back from the client."""
    fields = {"kind": str, "uri": str, "start": int, "end": int, "lead": str}
    ok = isinstance(data, dict) and data.get("kind") in TITLES
    ok = ok and all(isinstance(data.get(key), kind) for key, kind in fields.items())
    ok = ok and isinstance(data.get("version"), (int, type(None)))
    if not ok or data["end"] < data["start"] or data["start"] < 0:
        raise InputError(f"codeAction/resolve: not a diffill action (data {data!r:.200})")
    return Offer(*(data[key] for key in ("kind", "uri", "version", "start", "end", "lead")))


def check_current(document: TextDocument, offer: Offer) -> None:
    """An action listed for an older version of the document would edit the wrong text."""
    if document.version != offer.version:
        raise JsonRpcContentModified(
            f"{offer.uri} changed since the action was listed "
            f"(version {offer.version}, now {document.version})"
        )
    if offer.end > len(document.source):
        raise InputError(f"codeAction/resolve: offsets past the end of {offer.uri}")


def no_edit() -> NoReturn:
    """The answer to a resolve whose model run failed: an error the client shows, since a
    resolve must return an action and an action without its edit would do nothing."""
    raise JsonRpcInternalError("diffill could not compute this edit; the reason is in its log")
