"""`diffill/status`, the `diffill.accepted` command, settings changes and model-load failure."""

from __future__ import annotations

import shutil

from lsp_harness import (
    inline_params,
    open_doc,
    start,
    status,
    trained_model,
    wait_loaded,
)
from lsprotocol import types
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

URI = "file:///w/a.py"


def _complete(client: LanguageClient, position: types.Position):
    return client.text_document_inline_completion_async(inline_params(URI, position))


async def test_status_counts_latencies_and_accepts(client):
    await start(client, trained_model())
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    (item,) = (await _complete(client, position)).items
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(item.command.command, item.command.arguments)
    )
    state = await status(client)
    assert (state.state, state.error, state.mode) == ("ready", None, "diffusion")
    assert state.model.parameters > 0 and state.model.runtime in ("onnx", "onnx-int8", "torch")
    assert state.served == 1 and state.accepted == 1 and len(state.latencyMs.last) == 1
    assert state.lastEngine.contextTokens > 0 and state.pending == 0


async def test_repeat_and_typed_ahead_come_from_the_cache(client):
    await start(client, trained_model())
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    first = await _complete(client, position)
    again = await _complete(client, position)
    assert [i.insert_text for i in again.items] == [i.insert_text for i in first.items]
    typed = TRAIN_MIDDLE[:2]
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(version=2, uri=URI),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(position, position), text=typed
                )
            ],
        )
    )
    ahead = types.Position(position.line, position.character + len(typed))
    rest = await _complete(client, ahead)
    assert [i.insert_text for i in rest.items] == [TRAIN_MIDDLE[len(typed) :]]
    state = await status(client)
    assert state.served == 3 and state.cacheHits == 2


async def test_invalid_setting_warns_and_keeps_serving(client):
    await start(client, trained_model())
    model = {"path": str(trained_model()), "mode": "sideways"}  # same model: no reload
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"diffill": {"model": model, "alternatives": 2}}
        )
    )
    message = await client.wait_for_notification(types.WINDOW_SHOW_MESSAGE)
    assert message.type == types.MessageType.Warning
    assert "model.mode: expected one of diffusion, ar, got 'sideways'" in message.message
    assert any("model.mode" in log.message for log in client.log_messages)
    state = await status(client)
    assert state.mode == "diffusion" and state.state == "ready"
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    assert [i.insert_text for i in (await _complete(client, position)).items] == [TRAIN_MIDDLE]


async def test_disabling_by_configuration_stops_completions(client):
    await start(client, trained_model())
    settings = {"enable": False, "model": {"path": str(trained_model())}}
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"diffill": settings})
    )
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    assert len((await _complete(client, position)).items) == 0
    assert (await status(client)).enabled is False


async def test_missing_model_fails_with_a_reason_and_the_server_stays_up(client, tmp_path):
    await client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                window=types.WindowClientCapabilities(work_done_progress=True)
            ),
            initialization_options={"model": {"path": str(tmp_path / "nowhere")}},
        )
    )
    await wait_loaded(client)
    state = await status(client)
    assert state.state == "failed" and "nowhere" in state.error and "\n" not in state.error
    assert any("cannot load the model" in m.message for m in client.messages)
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    assert len((await _complete(client, position)).items) == 0


async def test_corrupt_weights_fail_with_the_file_named(client, tmp_path):
    folder = tmp_path / "corrupt"
    shutil.copytree(trained_model(), folder)
    shard = sorted(folder.glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:100])  # truncated mid-header
    await start(client, folder)
    state = await status(client)
    assert state.state == "failed" and shard.name in state.error and "\n" not in state.error
    position = open_doc(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    assert len((await _complete(client, position)).items) == 0
