"""manifest.yml is a valid Slack app manifest that declares what the bot uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "specs" / "slack-manifest.schema.1.0.0.json").read_text())


def manifest() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "manifest.yml").read_text()))


def test_manifest_validates_against_slacks_schema() -> None:
    """The manifest passes Slack's official JSON schema (draft-07, no extra properties)."""
    jsonschema.validate(manifest(), SCHEMA)


def test_the_schema_check_is_strict() -> None:
    """A misspelt key fails, so the test above can fail."""
    broken = manifest()
    broken["features"]["slash_comands"] = broken["features"].pop("slash_commands")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_manifest_declares_commands_interactivity_home_and_scopes() -> None:
    """Both slash commands, interactivity, the Home tab, app_home_opened and the bot scopes used."""
    data = manifest()
    assert {c["command"] for c in data["features"]["slash_commands"]} == {"/oauth-app", "/oauth-secret"}
    assert data["settings"]["interactivity"]["is_enabled"] is True
    assert data["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in data["settings"]["event_subscriptions"]["bot_events"]
    assert set(data["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "users:read",
        "users:read.email",
        "usergroups:read",
    }
    urls = {c["url"] for c in data["features"]["slash_commands"]}
    urls.add(data["settings"]["interactivity"]["request_url"])
    assert all(url.endswith("/slack/events") for url in urls)
