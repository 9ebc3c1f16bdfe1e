"""The server never opens a network connection.

The real `diffill lsp` runs with a `sitecustomize` on PYTHONPATH that makes creating an
internet socket (IPv4 or IPv6), resolving a name or connecting raise, and records every
attempt. Local pipes (the event loop's self-pipe, stdio) stay allowed. Completions must still
work, the guard must have been loaded in the server, and no attempt may be recorded.
"""

from __future__ import annotations

import sys

import pytest_asyncio
from lsp_harness import DIFFILL, inline_params, open_doc, start, trained_model
from pytest_lsp import ClientServerConfig
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

GUARD = """
import os, socket

_LOG = os.environ["DIFFILL_NET_LOG"]
open(os.environ["DIFFILL_GUARD_LOADED"], "w").write(str(os.getpid()))


def _refuse(what):
    with open(_LOG, "a") as log:
        log.write(what + "\\n")
    raise PermissionError("network access blocked by the offline test: " + what)


class _GuardedSocket(socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):
            _refuse(f"socket(family={family})")
        super().__init__(family, type, proto, fileno)


socket.socket = _GuardedSocket
socket.create_connection = lambda *a, **k: _refuse(f"create_connection{a}")
socket.getaddrinfo = lambda *a, **k: _refuse(f"getaddrinfo{a}")
"""


@pytest_asyncio.fixture
async def guarded(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(GUARD)
    env = {
        "PATH": str(sys.executable).rsplit("/", 1)[0] + ":/usr/bin:/bin",
        "PYTHONPATH": str(tmp_path),
        "DIFFILL_NET_LOG": str(tmp_path / "network.log"),
        "DIFFILL_GUARD_LOADED": str(tmp_path / "guard.loaded"),
    }
    client = await ClientServerConfig(server_command=DIFFILL, server_env=env).start()
    yield client, tmp_path
    await client.shutdown_session()
    await client.stop()


async def test_completions_work_with_the_network_blocked(guarded):
    client, folder = guarded
    await start(client, trained_model())
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    result = await client.text_document_inline_completion_async(
        inline_params("file:///w/a.py", position)
    )
    assert [item.insert_text for item in result.items] == [TRAIN_MIDDLE]
    assert (folder / "guard.loaded").exists(), "the guard must have run inside the server"
    assert not (folder / "network.log").exists(), (folder / "network.log").read_text()
