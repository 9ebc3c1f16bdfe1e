"""A request whose arrays would not fit `model.memoryBudgetMb` is refused before the engine
allocates them, with an error naming both figures; the server answers the next request."""

from __future__ import annotations

import pytest
from lsp_harness import complete, start, trained_model
from pygls.exceptions import JsonRpcInvalidParams
from tiny_model import TRAIN_MIDDLE, TRAIN_PREFIX, TRAIN_SUFFIX

from engine.checkpoint import load_config
from engine.embedded import memory_needed

BUDGET = {"model": {"memoryBudgetMb": 1}, "context": {"budgetTokens": 4000, "otherFiles": 0}}


def test_the_estimate_grows_with_context_and_candidates():
    config = load_config(trained_model())
    small = memory_needed(config, 30, 1, 64)
    assert small < 1_000_000 < memory_needed(config, 4000, 1, 64)
    assert memory_needed(config, 30, 3, 64) > small


async def test_a_context_over_the_memory_budget_is_refused_and_the_server_goes_on(client):
    await start(client, trained_model(), settings=BUDGET)
    long = "".join(f"value_{n} = {n} * {n}\n" for n in range(1500))
    with pytest.raises(JsonRpcInvalidParams, match=r"over the memory budget of 1\.0 MB"):
        await complete(client, long + TRAIN_PREFIX + "║" + TRAIN_SUFFIX, "file:///w/long.py")
    answer = await complete(client, TRAIN_PREFIX + "║" + TRAIN_SUFFIX)
    assert [item.insert_text for item in answer.items] == [TRAIN_MIDDLE]
