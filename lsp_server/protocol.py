"""pygls's protocol with four fixes for a completion server.

- A request whose params do not fit the method's type gets an InvalidParams (-32602) error
  naming the bad fields. Stock pygls raises while decoding such a message, before it knows
  the request id, and the client never hears back.
- Completion requests see the document as it was when the request arrived. An async handler
  starts only after the reader has handled the messages already buffered behind it, so it
  could otherwise read a newer text than the client's position refers to. Arrival snapshots
  cost nothing: the text is an immutable string.
- A handled notification lets go of its future. pygls 2.1 files the future of a notification
  whose handler is a generator (its own didOpen, didChange and didClose) under a fresh id in
  the table of requests in flight, and only answering a request takes an entry out: about
  1 KB stayed behind for every keystroke, found by `diffill soak` with tracemalloc.
- An answered request's exception lets go of its frames. pygls answers a failed request by
  re-raising the handler's exception (`future.result()`) in a frame that holds the future,
  which holds the exception: a reference cycle, kept until a full garbage collection, that
  holds every frame of the handler, the completer it ran on included. A third of a typist's
  requests end so (cancelled), and late in a long session full collections are rare: in a
  60-minute `diffill soak` a model swapped out at minute 46 was still resident (95 MB, 4
  threads) at minute 60.
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from cattrs import transform_error
from cattrs.errors import ClassValidationError
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol
from pygls.workspace import TextDocument

from lsp_server.text_sync import SyncedDocument

SNAPSHOT_METHODS = frozenset(
    {types.TEXT_DOCUMENT_INLINE_COMPLETION, types.TEXT_DOCUMENT_COMPLETION}
)
MAX_SNAPSHOTS = 64  # requests cancelled before their handler ran leave theirs until evicted


@dataclass(frozen=True)
class UndecodableRequest:
    id: Any
    method: str
    problem: str


def _problem(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, ClassValidationError):
        return "; ".join(transform_error(cause, path="request"))[:500]
    return str(cause or exc)[:500]


class DiffillProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._snapshots: OrderedDict[Any, TextDocument] = OrderedDict()

    def take_snapshot(self, msg_id: Any) -> TextDocument | None:
        """The document of request `msg_id` as it was when the request arrived."""
        return self._snapshots.pop(msg_id, None)

    def _snapshot(self, message: Any) -> None:
        uri = message.params.text_document.uri
        document = self._workspace.text_documents.get(uri) if self._workspace else None
        if document is None:
            return
        self._snapshots[message.id] = SyncedDocument(
            uri,
            document.source,
            document.version,
            document.language_id,
            position_codec=document.position_codec,
        )
        while len(self._snapshots) > MAX_SNAPSHOTS:
            self._snapshots.popitem(last=False)

    @property
    def in_flight(self) -> int:
        """Requests and notifications whose handlers have not finished."""
        return len(self._request_futures)

    def _check_handler_result(self, future: Future[Any]) -> None:
        filed = list(self._request_futures.items())
        stale = next((msg_id for msg_id, pending in filed if pending is future), None)
        if stale is not None:
            self._request_futures.pop(stale, None)
        super()._check_handler_result(future)

    def _send_handler_result(self, future: Future[Any], *, msg_id: Any) -> None:
        try:
            super()._send_handler_result(future, msg_id=msg_id)
        finally:
            drop_tracebacks(future)

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except Exception as exc:
            if "jsonrpc" in data and "id" in data and isinstance(data.get("method"), str):
                return UndecodableRequest(data["id"], data["method"], _problem(exc))
            raise

    def handle_message(self, message):
        if isinstance(message, UndecodableRequest):
            error = JsonRpcInvalidParams(f"invalid params for {message.method}: {message.problem}")
            self._send_response(message.id, None, error.to_response_error())
            return
        if getattr(message, "method", None) in SNAPSHOT_METHODS and hasattr(message, "id"):
            self._snapshot(message)
        super().handle_message(message)


def drop_tracebacks(future: Future[Any]) -> None:
    """Clear the tracebacks of a finished future's exception and of the ones it chains, once
    the answer is sent and logged: nothing reads them after that."""
    if not future.done() or future.cancelled():
        return
    exc, seen = future.exception(), set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__
