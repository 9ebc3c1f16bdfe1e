"""Every server setting is mirrored, with the server's default and limits, in the VS Code
extension's `contributes.configuration` and in the settings table of docs/editors.md; the
online-backend settings also in the Neovim help's settings example."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lsp_server.config import Settings, camel

REPO = Path(__file__).resolve().parent.parent
PROPERTIES = json.loads((REPO / "editor-clients" / "vscode" / "package.json").read_text())[
    "contributes"
]["configuration"]["properties"]
EDITORS_DOC = (REPO / "docs" / "editors.md").read_text()
NEOVIM_HELP = (REPO / "editor-clients" / "neovim" / "doc" / "diffill.txt").read_text()


def _settings(obj: object = Settings(), path: str = ""):
    """(key, default, field metadata) of every leaf setting, keys dotted and camelCase."""
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), path + camel(f.name)
        if dataclasses.is_dataclass(value):
            yield from _settings(value, key + ".")
        else:
            yield key, value, dict(f.metadata)


SETTINGS = list(_settings())


@pytest.mark.parametrize(("key", "default", "meta"), SETTINGS, ids=[s[0] for s in SETTINGS])
def test_vscode_declares_the_setting_with_the_servers_default_and_limits(key, default, meta):
    declared = PROPERTIES[f"diffill.{key}"]
    assert declared["default"] == default
    if meta.get("low") is not None:
        assert (declared["minimum"], declared["maximum"]) == (meta["low"], meta["high"])
    if meta.get("choices"):
        assert tuple(declared["enum"]) == tuple(meta["choices"])


@pytest.mark.parametrize(("key", "default", "meta"), SETTINGS, ids=[s[0] for s in SETTINGS])
def test_the_editors_doc_lists_the_setting_with_its_default(key, default, meta):
    shown = json.dumps(default)
    assert f"| `{key}` | `{shown}` |" in EDITORS_DOC


ONLINE = [s for s in SETTINGS if s[0] == "offline" or s[0].startswith("backend.")]


@pytest.mark.parametrize(("key", "default", "meta"), ONLINE, ids=[s[0] for s in ONLINE])
def test_the_neovim_help_shows_the_online_setting(key, default, meta):
    name = key.rsplit(".", 1)[-1]
    shown = "nil" if default is None else json.dumps(default)
    assert f"{name} = {shown}" in NEOVIM_HELP
