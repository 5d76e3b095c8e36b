"""Automatic device configurations: targeting, priority, metrics, late joiners, etags."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.iot.hub import IoTHubConfigurationManager
from azure.iot.hub.models import ConfigurationQueriesTestInput

import twin_manager
from local_hub import LocalHub
from twin_manager import TwinManager


def _eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _device(fleet: TwinManager, device_id: str, **tags: Any) -> None:
    fleet.devices.create(device_id)
    fleet.twins.update_tags(device_id, tags)


def test_configuration_applies_to_targets_and_counts(fleet: TwinManager) -> None:
    _device(fleet, "eu-1", region="eu")
    _device(fleet, "eu-2", region="eu")
    _device(fleet, "us-1", region="us")
    created = fleet.configurations.create(
        "eu-telemetry",
        target_condition="tags.region = 'eu'",
        desired={"properties.desired.configuration.telemetryInterval": 30},
        priority=1,
        metrics={"reportedOk": "SELECT deviceId FROM devices WHERE properties.reported.ok = true"},
    )
    assert created.target_condition == "tags.region = 'eu'"
    _eventually(lambda: fleet.configurations.get("eu-telemetry").applied_count == 2)
    config = fleet.configurations.get("eu-telemetry")
    assert config.targeted_count == 2
    assert config.metric_results == {"reportedOk": 0}
    assert fleet.twins.get("eu-1").desired == {"configuration": {"telemetryInterval": 30}}
    assert fleet.twins.get("us-1").desired == {}
    _device(fleet, "eu-3", region="eu")  # a device that starts matching later gets the content
    _eventually(lambda: fleet.configurations.get("eu-telemetry").targeted_count == 3)
    applied = fleet.configurations.wait_until_applied("eu-telemetry", 1.0, timeout=10, poll=0.05)
    assert (applied.targeted_count, applied.applied_count) == (3, 3)
    assert fleet.twins.get("eu-3").desired["configuration"] == {"telemetryInterval": 30}


def test_highest_priority_wins_and_ties_go_to_the_newest(fleet: TwinManager) -> None:
    _device(fleet, "d-1", region="eu", ring="canary")
    fleet.configurations.create(
        "base", target_condition="tags.region = 'eu'", desired={"properties.desired.mode": "base"},
        priority=1,
    )  # fmt: skip
    fleet.configurations.create(
        "canary", target_condition="tags.ring = 'canary'",
        desired={"properties.desired.mode": "canary"}, priority=5,
    )  # fmt: skip
    _eventually(lambda: fleet.twins.get("d-1").desired.get("mode") == "canary")
    fleet.configurations.create(
        "canary-newer", target_condition="tags.ring = 'canary'",
        desired={"properties.desired.mode": "newer"}, priority=5,
    )  # fmt: skip
    _eventually(lambda: fleet.twins.get("d-1").desired.get("mode") == "newer")
    _eventually(lambda: fleet.configurations.get("canary-newer").applied_count == 1)
    assert fleet.configurations.get("base").targeted_count == 1
    assert fleet.configurations.get("base").applied_count == 0


def test_update_needs_a_fresh_etag_and_content_is_fixed(hub: LocalHub, fleet: TwinManager) -> None:
    config = fleet.configurations.create(
        "cfg", target_condition="*", desired={"properties.desired.x": 1}, labels={"team": "ops"}
    )
    with pytest.raises(twin_manager.Conflict):
        fleet.configurations.create(
            "cfg", target_condition="*", desired={"properties.desired.x": 1}
        )
    updated = fleet.configurations.update(config, priority=3)
    assert (updated.priority, updated.labels) == (3, {"team": "ops"})
    with pytest.raises(twin_manager.PreconditionFailed):
        fleet.configurations.update(config, priority=4)
    assert [c.id for c in fleet.configurations.list()] == ["cfg"]
    fleet.configurations.delete("cfg")
    with pytest.raises(twin_manager.HubError) as caught:
        fleet.configurations.get("cfg")
    assert caught.value.status == 404


def test_invalid_configurations_are_refused(hub: LocalHub, fleet: TwinManager) -> None:
    with pytest.raises(twin_manager.InvalidQuery):
        fleet.configurations.create(
            "bad", target_condition="tags.x =", desired={"properties.desired.a": 1}
        )
    with pytest.raises(twin_manager.HubError) as caught:
        fleet.configurations.create("bad", target_condition="*", desired={"tags.a": 1})
    assert caught.value.status == 400
    assert fleet.configurations.list() == []
    manager = IoTHubConfigurationManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    tested = manager.test_configuration_queries(
        ConfigurationQueriesTestInput(
            target_condition="tags.x = = 1",
            custom_metric_queries={"ok": "SELECT deviceId FROM devices", "bad": "SELECT FROM"},
        )
    )
    assert "line 1, column 10" in tested.target_condition_error
    assert list(tested.custom_metric_query_errors) == ["bad"]
