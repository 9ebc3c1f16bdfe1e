"""What reaches the server's stderr log: document text at most as a short excerpt, and only
at debug level.

pygls logs whole message bodies (every didOpen carries a document, every answer a
suggestion) at INFO and DEBUG, and whole messages in some warnings. This filter, on the one
stderr handler `diffill lsp` sets up, passes pygls's records below WARNING only when the log
level is DEBUG, and cuts every record's message to EXCERPT_CHARS.

It also keeps routine protocol events at DEBUG: a `$/cancelRequest` that crosses its answer
is normal (every keystroke may send one), and so is answering a superseded request with
RequestCancelled, yet pygls logs a warning for the one and a traceback for the other (and
for every error the server answers on purpose). `diffill soak` found a long session filling
the client's stderr pipe with them until the server blocked on a write; Neovim copies a
server's stderr into its lsp.log, which would grow by a traceback a keystroke.
"""

from __future__ import annotations

import logging

from pygls.exceptions import (
    JsonRpcContentModified,
    JsonRpcInvalidParams,
    JsonRpcRequestCancelled,
)

EXCERPT_CHARS = 200
ROUTINE = ("Cancel notification for unknown message id",)  # pygls's format strings
ANSWERED = (JsonRpcRequestCancelled, JsonRpcInvalidParams, JsonRpcContentModified)  # on purpose


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} chars cut]"


class Excerpts(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.debug = level <= logging.DEBUG

    def filter(self, record: logging.LogRecord) -> bool:
        answered = record.exc_info and isinstance(record.exc_info[1], ANSWERED)
        routine = record.levelno < logging.WARNING or str(record.msg).startswith(ROUTINE)
        routine = routine or bool(answered)
        if record.name.startswith("pygls") and routine and not self.debug:
            return False
        record.msg, record.args = excerpt(record.getMessage()), None
        return True


def configure(level_name: str) -> None:
    """Log to stderr at `level_name`, through the filter."""
    level = logging.getLevelName(level_name.upper())
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {level_name!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("diffill lsp: %(message)s"))
    handler.addFilter(Excerpts(level))
    logging.basicConfig(level=level, handlers=[handler], force=True)
