"""Turn the engine's expected errors into LSP answers at the handler boundary.

Bad input (unknown document, position past the end, oversized or binary text) becomes an
InvalidParams error whose message names the problem; a cancelled or superseded request
becomes RequestCancelled (-32800); an online backend's failure, which the server has already
reported, and any other engine failure (logged here) are answered with an empty result, so
the server stays up. So is an unexpected exception (a bug, not a DiffillError): the server
logs its traceback once (lsp_server/failures.py). JSON-RPC errors a handler raises on purpose
pass through.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcRequestCancelled

from engine.errors import BackendError, Cancelled, DiffillError, InputError

T = TypeVar("T")


def lsp_errors(empty: Any = None) -> Callable:
    """Decorate an async handler `(ls, params)`; `empty` is the answer after an engine failure."""

    def decorate(handler: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(handler)
        async def guarded(ls, params):
            try:
                return await handler(ls, params)
            except Cancelled as exc:
                raise JsonRpcRequestCancelled(f"request cancelled: {exc}") from None
            except InputError as exc:
                raise JsonRpcInvalidParams(str(exc)) from None
            except BackendError:
                return empty() if callable(empty) else empty  # the server logged it, once
            except DiffillError as exc:
                ls.log(f"completion failed: {exc}", error=True)
                return empty() if callable(empty) else empty
            except JsonRpcException:
                raise
            except Exception as exc:
                ls.unexpected(exc)
                return empty() if callable(empty) else empty

        return guarded

    return decorate
