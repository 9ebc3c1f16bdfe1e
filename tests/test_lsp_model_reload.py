"""The model folder changes while the real server runs: new weights are loaded beside the old
model and swapped in; a truncated shard, a wrong config or deleted files keep the old model
serving, said once; a `model.path` change through settings behaves the same."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from lsp_harness import complete, start, status, trained_model
from lsprotocol import types
from pytest_lsp import LanguageClient
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

SETTINGS = {"context": {"otherFiles": 0}}
POLLS = 2400  # 2 minutes of 50 ms polls: a bound for a broken server, not a speed check


async def _until(client: LanguageClient, condition):
    for _ in range(POLLS):
        if condition(state := await status(client)):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server never got there; last status {state}")


async def _answer(client: LanguageClient, n: int) -> list[str]:
    marked = TRAIN_PREFIX + "║" + TRAIN_SUFFIX
    answer = await complete(client, marked, uri=f"file:///w/reload{n}.py")
    return [item.insert_text for item in answer.items]


def _serving(tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_model(), tmp_path / "serving"))


async def _start_watched(client: LanguageClient, folder: Path) -> None:
    await start(client, folder, settings=SETTINGS)
    await _until(client, lambda s: s.watchingModel)


def _land(source: Path, folder: Path) -> None:
    """New weights arrive as a copy would bring them: file after file, over the old ones."""
    for file in sorted(source.iterdir()):
        shutil.copy(file, folder / file.name)


def _warnings(client: LanguageClient) -> list[str]:
    return [m.message for m in client.messages if "cannot load the new model" in m.message]


async def test_new_weights_are_loaded_and_swapped_in(client, tmp_path):
    folder = _serving(tmp_path)
    await _start_watched(client, folder)
    assert await _answer(client, 0) == [TRAIN_MIDDLE]
    _land(trained_model(train_steps=0), folder)  # random weights: another answer
    state = await _until(client, lambda s: s.loads == 2)
    assert state.state == "ready" and state.error is None
    assert await _answer(client, 1) != [TRAIN_MIDDLE]


async def test_an_edited_model_card_is_not_new_weights(client, tmp_path):
    folder = _serving(tmp_path)
    await _start_watched(client, folder)
    (folder / "MODEL_CARD.md").write_text("# a new row in the legs table\n")
    (folder / "NOTES.txt").write_text("scores of the next leg\n")
    await asyncio.sleep(3)  # five times the watcher's settle time: a reload would have begun
    assert (await status(client)).loads == 1
    _land(trained_model(train_steps=0), folder)  # the watch is alive: weights do reload
    await _until(client, lambda s: s.loads == 2)


def _truncate_shard(folder: Path) -> str:
    shard = sorted(folder.glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return shard.name


def _wrong_config(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 77}))
    return "vocab_size"


def _delete_tokenizer(folder: Path) -> str:
    (folder / "tokenizer.json").unlink()
    return "tokenizer.json"


@pytest.mark.parametrize("damage", [_truncate_shard, _wrong_config, _delete_tokenizer])
async def test_broken_new_files_keep_the_old_model_said_once(client, tmp_path, damage):
    folder = _serving(tmp_path)
    await _start_watched(client, folder)
    named = damage(folder)
    state = await _until(client, lambda s: s.loadFailures == 1)
    assert state.state == "ready" and state.error.startswith("kept the previous model")
    assert named in state.error
    (folder / "extra.json").write_text('{"a second change": "the same failure again"}')
    await _until(client, lambda s: s.loadFailures == 2)
    assert len(_warnings(client)) == 1, _warnings(client)
    assert await _answer(client, 0) == [TRAIN_MIDDLE]
    _land(trained_model(), folder)  # repaired: loaded again
    state = await _until(client, lambda s: s.loads == 2)
    assert state.error is None and await _answer(client, 1) == [TRAIN_MIDDLE]


async def test_a_model_path_setting_change_swaps_or_keeps(client, tmp_path):
    await start(client, trained_model(), settings=SETTINGS)

    def configure(path: Path) -> None:
        settings = {**SETTINGS, "model": {"path": str(path)}}
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"diffill": settings})
        )

    configure(tmp_path / "nowhere")
    state = await _until(client, lambda s: s.loadFailures == 1)
    assert state.state == "ready" and "nowhere" in state.error
    assert await _answer(client, 0) == [TRAIN_MIDDLE]
    configure(trained_model(train_steps=0))
    state = await _until(client, lambda s: s.loads == 2)
    assert state.error is None and await _answer(client, 1) != [TRAIN_MIDDLE]
