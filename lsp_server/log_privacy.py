"""What reaches the server's stderr log: document text at most as a short excerpt, and only
at debug level.

pygls logs whole message bodies (every didOpen carries a document, every answer a
suggestion) at INFO and DEBUG, and whole messages in some warnings. This filter, on the one
stderr handler `diffill lsp` sets up, passes pygls's records below WARNING only when the log
level is DEBUG, and cuts every record's message to EXCERPT_CHARS.
"""

from __future__ import annotations

import logging

EXCERPT_CHARS = 200


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} chars cut]"


class Excerpts(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.debug = level <= logging.DEBUG

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("pygls") and record.levelno < logging.WARNING and not self.debug:
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
