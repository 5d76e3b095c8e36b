"""`campaign create config` as an operator uses it: version 51 replaces version 50's settings on
the devices (desired and reported), `--merge` merges instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from device_agent import SimulatedFleet
from local_hub import LocalHub
from twin_manager import TwinManager


def _twinfleet(hub: LocalHub, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "twinfleet", *args, "--hub-dir", str(hub.data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def _roll_out(hub: LocalHub, campaign_id: str, version: int, settings: str, *more: str) -> None:
    created = _twinfleet(
        hub, "campaign", "create", "config", campaign_id, "--settings", settings,
        "--config-version", str(version), "--target", "deviceId = 'cfg-1'", "--rate", "600", *more,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    ran = _twinfleet(hub, "campaign", "run", campaign_id, "--poll", "0.3")
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_new_configuration_version_replaces_the_settings(hub: LocalHub, tmp_path: Path) -> None:
    fleet = TwinManager.from_local_hub(hub)
    fleet.devices.create("cfg-1")
    simulated = SimulatedFleet().start()
    try:
        simulated.add(fleet.devices.connection_string("cfg-1"), tmp_path / "cfg-1",
                      ca_cert=hub.ca_certificate)  # fmt: skip
        _roll_out(hub, "v50", 50, '{"interval": 15, "mode": "eco"}')
        _roll_out(hub, "v51", 51, '{"interval": 20}')
        twin = fleet.twins.get("cfg-1")
        assert twin.desired["configuration"] == {
            "version": 51,
            "interval": 20,
            "campaignId": "v51:1",
        }
        assert twin.reported["configuration"]["settings"] == {"interval": 20}
        _roll_out(hub, "v52", 52, '{"mode": "eco"}', "--merge")
        twin = fleet.twins.get("cfg-1")
        assert twin.desired["configuration"] == {
            "version": 52,
            "interval": 20,
            "mode": "eco",
            "campaignId": "v52:1",
        }
        assert twin.reported["configuration"]["settings"] == {"interval": 20, "mode": "eco"}
    finally:
        simulated.stop()
