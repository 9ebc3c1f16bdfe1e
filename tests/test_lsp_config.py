"""The settings converter, without a server: camelCase keys, defaults, bad values reported."""

from __future__ import annotations

from lsp_server.config import Settings, settings_from_json


def test_nothing_gives_the_defaults():
    assert settings_from_json(None) == (Settings(), [])
    assert settings_from_json({}) == (Settings(), [])


def test_camel_case_keys_fill_nested_fields():
    settings, issues = settings_from_json(
        {
            "model": {
                "path": "/m",
                "maxTokens": 32,
                "mode": "ar",
                "threshold": 1,
                "length": "predicted",
            },
            "context": {"budgetTokens": 512, "suffixShare": 0.5},
            "languages": {"markdown": False},
            "alternatives": 2,
        }
    )
    assert issues == []
    assert (settings.model.path, settings.model.max_tokens, settings.model.mode) == ("/m", 32, "ar")
    assert settings.model.threshold == 1.0 and isinstance(settings.model.threshold, float)
    assert settings.model.sampling() == {
        "mode": "ar",
        "max_steps": 4,
        "threshold": 1.0,
        "length": "predicted",
    }
    assert (settings.context.budget_tokens, settings.context.suffix_share) == (512, 0.5)
    assert settings.alternatives == 2
    assert not settings.enabled_for("markdown") and settings.enabled_for("python")


def test_settings_under_a_diffill_key_are_found():
    settings, _ = settings_from_json({"diffill": {"enable": False}})
    assert settings.enable is False and not settings.enabled_for("python")


def test_unknown_keys_are_ignored():
    settings, issues = settings_from_json({"colour": "red", "model": {"size": 3}})
    assert (settings, issues) == (Settings(), [])


def test_each_bad_value_falls_back_alone_and_is_named():
    settings, issues = settings_from_json(
        {
            "enable": "yes",
            "alternatives": 0,
            "model": {
                "mode": "beam",
                "maxTokens": 1.5,
                "steps": 8,
                "runtime": True,
                "length": "guess",
            },
            "context": [],
            "languages": {"python": "on"},
        }
    )
    assert settings.enable is True and settings.alternatives == Settings().alternatives
    assert settings.model.mode == "diffusion" and settings.model.max_tokens == 64
    assert settings.model.steps == 8  # the good value next to bad ones still applies
    assert settings.context == Settings().context and settings.languages == {}
    named = " | ".join(issues)
    for key in ("enable", "alternatives", "model.mode", "model.maxTokens", "model.runtime"):
        assert key + ":" in named
    assert "model.length: expected one of blocks, predicted, full, got 'guess'" in named
    assert "context:" in named and "languages:" in named
    assert len(issues) == 8


def test_a_non_object_is_one_issue():
    settings, issues = settings_from_json(["model"])
    assert settings == Settings() and len(issues) == 1 and "expected an object" in issues[0]


def test_offline_follows_the_backend_kind_unless_set():
    assert settings_from_json({})[0].is_offline
    assert not settings_from_json({"backend": {"kind": "ollama"}})[0].is_offline
    forced, issues = settings_from_json({"offline": True, "backend": {"kind": "ollama"}})
    assert forced.is_offline and issues == []


def test_bad_backend_values_fall_back_and_are_named():
    settings, issues = settings_from_json(
        {"offline": "no", "backend": {"kind": "gpt", "timeoutMs": 5, "fallback": "cloud"}}
    )
    assert settings.offline is None and settings.backend.kind == "embedded"
    assert settings.backend.timeout_ms == 5000 and settings.backend.fallback == "none"
    assert [issue.split(":")[0] for issue in issues] == [
        "offline",
        "backend.kind",
        "backend.timeoutMs",
        "backend.fallback",
    ]
