"""A new configuration version replaces the settings (keys it lacks are removed from desired and
from what devices apply and report); `merge=True` merges instead. Real agents apply them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange, Rollout
from patterns.contracts import patches
from twin_manager import TwinManager


def _roll_out(fleet: TwinManager, campaign_id: str, change: ConfigurationChange) -> None:
    spec = CampaignSpec(id=campaign_id, pattern=change, target="tags.kind = 'sensor'",
                        rollout=Rollout(per_minute=600))  # fmt: skip
    campaign = Campaign.create(fleet, spec)
    deadline = time.monotonic() + 60
    while (status := campaign.tick()).status != "completed":
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status.counts == {"succeeded": 1}


def test_versions_replace_settings_unless_merged(
    fleet: TwinManager, devices: Any, agents: Any
) -> None:
    (device_id,) = devices(1)
    applied: list[dict[str, Any]] = []
    agents([device_id], configure=applied.append)

    def settings() -> tuple[dict[str, Any], dict[str, Any]]:
        twin = fleet.twins.get(device_id)
        section = twin.desired["configuration"].items()
        desired = {k: v for k, v in section if k not in ("version", "campaignId")}
        return desired, twin.reported["configuration"]["settings"]

    first = {"interval": 15, "mode": "eco", "limits": {"low": 1, "high": 9}}
    _roll_out(fleet, "v50", ConfigurationChange(version=50, settings=first))
    assert settings() == (first, first)
    _roll_out(
        fleet,
        "v51",
        ConfigurationChange(version=51, settings={"interval": 20, "limits": {"low": 2}}),
    )
    assert settings() == ({"interval": 20, "limits": {"low": 2}},) * 2
    assert applied[-1] == {"interval": 20, "limits": {"low": 2}}
    _roll_out(fleet, "v52", ConfigurationChange(version=52, settings={"mode": "eco"}, merge=True))
    merged = {"interval": 20, "limits": {"low": 2}, "mode": "eco"}
    assert settings() == (merged, merged)
    assert applied[-1] == merged
    assert fleet.twins.get(device_id).desired["configuration"]["version"] == 52


def test_a_setting_named_version_is_refused() -> None:
    with pytest.raises(ValidationError, match="names the configuration's version"):
        ConfigurationChange(version=3, settings={"version": "x"})


def test_replacement_and_applied_patches() -> None:
    current = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}
    new = {"b": {"c": 4}, "e": [2], "f": {"g": None}}
    patch = patches.replacement(current, new)
    assert patch == {"a": None, "b": {"c": 4, "d": None}, "e": [2], "f": {"g": None}}
    assert patches.applied(current, patch) == {"b": {"c": 4}, "e": [2], "f": {}}
    assert patches.applied({"x": 1}, {"x": {"y": None, "z": 1}}) == {"x": {"z": 1}}
