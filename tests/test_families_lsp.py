"""An open-weight family folder served by the real `diffill lsp` command, unchanged server."""

from __future__ import annotations

from pathlib import Path

from lsp_harness import open_doc, start
from lsprotocol import types
from test_families_infill import chain_rows, hand_built, ids_of, logit_for

from engine.families.spec import DREAM


def dream_chain(folder: Path) -> Path:
    """A Dream-format folder whose model fills `x=` with `abc` (see test_families_infill)."""
    return hand_built(folder, DREAM, chain_rows({ids_of("z")[0]: logit_for(0.3)}))


async def test_inline_completion_from_a_dream_folder(client, tmp_path: Path):
    # The hand-built chain is decoded one position per step, as in test_families_infill,
    # so the step cap is lifted from the server's default.
    await start(client, dream_chain(tmp_path / "dream"), settings={"model": {"steps": 0}})
    position = open_doc(client, "x=║\n")
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri="file:///w/a.py"),
            position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    assert [item.insert_text for item in result.items][:1] == ["abc"]
