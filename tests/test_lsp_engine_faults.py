"""A bug inside the engine (an exception that is not a DiffillError), injected through the
real server's DIFFILL_INJECT_FAULT hook: the request is answered empty, the traceback is
logged once however often it happens, and the model thread goes on serving."""

from __future__ import annotations

from lsp_harness import complete, lsp_fixture, start, status, trained_model
from lsprotocol import types
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

from lsp_server.failures import FAULT_ENV, FAULT_MARKER


@lsp_fixture(**{FAULT_ENV: "engine"})
async def faulty(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def _failure_logs(client: LanguageClient) -> list[str]:
    return [m.message for m in client.log_messages if "unexpected failure" in m.message]


async def test_a_bug_in_the_engine_is_logged_once_and_the_worker_goes_on(faulty):
    await start(faulty, trained_model(), settings={"context": {"otherFiles": 0}})
    for n in range(3):  # three different contexts, so no cache answers them
        marked = f"# {FAULT_MARKER} {n}\n{TRAIN_PREFIX}║{TRAIN_SUFFIX}"
        answer = await complete(faulty, marked, uri=f"file:///w/fault{n}.py")
        assert len(answer.items) == 0
    assert (await status(faulty)).unexpectedFailures == 3
    logs = _failure_logs(faulty)
    assert len(logs) == 1, logs
    assert "Traceback" in logs[0] and f"RuntimeError: fault injected by {FAULT_ENV}" in logs[0]
    answer = await complete(faulty, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    assert [item.insert_text for item in answer.items] == [TRAIN_MIDDLE]
    others = [m.message for m in faulty.log_messages if m.type == types.MessageType.Error]
    assert others == logs, others
