"""The stderr filter of `diffill lsp`: excerpts only, pygls's chatter and routine protocol
events only at DEBUG (lsp_server/log_privacy.py)."""

from __future__ import annotations

import logging
import sys

from pygls.exceptions import JsonRpcRequestCancelled

from lsp_server.log_privacy import EXCERPT_CHARS, Excerpts


def _record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_long_messages_are_cut_to_an_excerpt():
    record = _record("lsp_server", logging.ERROR, "body: %s", "x" * 5000)
    assert Excerpts(logging.WARNING).filter(record)
    assert len(record.getMessage()) < EXCERPT_CHARS + 40 and "chars cut]" in record.getMessage()


def test_a_cancel_crossing_its_answer_is_routine():
    routine = 'Cancel notification for unknown message id "%s"'
    cancel = _record("pygls.protocol.json_rpc", logging.WARNING, routine, "s1")
    assert not Excerpts(logging.WARNING).filter(cancel)
    assert Excerpts(logging.DEBUG).filter(cancel)
    bad = _record("pygls.protocol.json_rpc", logging.ERROR, "Unable to deserialize message")
    assert Excerpts(logging.WARNING).filter(bad)


def test_pygls_bodies_only_at_debug():
    sending = _record("pygls.protocol.json_rpc", logging.INFO, "Sending data: %s", "{...}")
    assert not Excerpts(logging.INFO).filter(sending)
    assert Excerpts(logging.DEBUG).filter(sending)


def test_errors_answered_on_purpose_log_no_traceback():
    try:
        raise JsonRpcRequestCancelled("superseded")
    except JsonRpcRequestCancelled:
        answered = logging.LogRecord(
            "pygls.protocol.json_rpc", logging.ERROR, __file__, 1, "Exception", (), sys.exc_info()
        )
    assert not Excerpts(logging.WARNING).filter(answered)
    assert Excerpts(logging.DEBUG).filter(answered)
