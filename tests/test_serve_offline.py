"""`diffill serve` opens no outgoing connection: the real command runs with a
`sitecustomize` on PYTHONPATH that makes connecting a socket, or resolving a name that is not
a numeric address, raise and be recorded. Listening on loopback stays allowed. A completion
must still work, the guard must have been loaded in the server, and no attempt recorded."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from serve_harness import serving
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX, shared_folder

pytestmark = pytest.mark.slow
GUARD = """
import ipaddress, os, socket

_LOG = os.environ["DIFFILL_NET_LOG"]
open(os.environ["DIFFILL_GUARD_LOADED"], "w").write(str(os.getpid()))
_resolve = socket.getaddrinfo


def _refuse(what):
    with open(_LOG, "a") as log:
        log.write(what + "\\n")
    raise PermissionError("outgoing network access blocked by the offline test: " + what)


def _numeric_only(host, *args, **kwargs):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        _refuse(f"getaddrinfo({host!r})")
    return _resolve(host, *args, **kwargs)


class _GuardedSocket(socket.socket):
    def connect(self, address):
        _refuse(f"connect{address}")

    def connect_ex(self, address):
        _refuse(f"connect_ex{address}")


socket.socket = _GuardedSocket
socket.create_connection = lambda *a, **k: _refuse(f"create_connection{a}")
socket.getaddrinfo = _numeric_only
"""


def test_serving_opens_no_outgoing_connection(tmp_path_factory, tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(GUARD)
    env = {
        "PYTHONPATH": str(tmp_path),
        "DIFFILL_NET_LOG": str(tmp_path / "network.log"),
        "DIFFILL_GUARD_LOADED": str(tmp_path / "guard.loaded"),
    }
    with serving(shared_folder(tmp_path_factory), env=env) as served:
        body = {"prompt": TRAIN_PREFIX, "suffix": TRAIN_SUFFIX, "max_tokens": 16}
        answer = httpx.post(served.url + "/v1/completions", json=body, timeout=60).json()
        infill = {"input_prefix": TRAIN_PREFIX, "input_suffix": TRAIN_SUFFIX}
        assert httpx.post(served.url + "/infill", json=infill, timeout=60).status_code == 200
        pid = served.process.pid
    assert answer["choices"][0]["text"] == TRAIN_MIDDLE
    assert (tmp_path / "guard.loaded").read_text() == str(pid)
    assert not (tmp_path / "network.log").exists()
