"""pygls's protocol with one fix: a request whose params do not fit the method's type gets
an InvalidParams (-32602) error naming the bad fields.

Stock pygls raises while decoding such a message, before it knows the request id, and the
client never hears back. Here the decoding failure is kept as a marker message and answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cattrs import transform_error
from cattrs.errors import ClassValidationError
from pygls.exceptions import JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol


@dataclass(frozen=True)
class UndecodableRequest:
    id: Any
    method: str
    problem: str


def _problem(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, ClassValidationError):
        return "; ".join(transform_error(cause, path="params"))[:500]
    return str(cause or exc)[:500]


class DiffillProtocol(LanguageServerProtocol):
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
        super().handle_message(message)
