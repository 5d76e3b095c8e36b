"""Campaign safety as an operator drives it from the CLI (`campaign create from-file`): ordered
waves with success thresholds, `rerun`, `forget`, health gates and maintenance windows, with real
agents (simulated platforms) applying the changes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device_agent import SimulatedFleet
from local_hub import LocalHub
from patterns.campaigns import Campaign
from patterns.contracts import times
from twin_manager import TwinManager


def _twinfleet(hub: LocalHub, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "twinfleet", *args, "--hub-dir", str(hub.data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def _eventually(check: Callable[[], Any], timeout: float = 45) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)
    return value


@pytest.fixture
def simulated() -> Iterator[SimulatedFleet]:
    running = SimulatedFleet().start()
    yield running
    running.stop()


def _create(hub: LocalHub, tmp_path: Path, spec: dict[str, Any]) -> None:
    path = tmp_path / f"{spec['id']}.json"
    path.write_text(json.dumps(spec))
    created = _twinfleet(hub, "campaign", "create", "from-file", str(path))
    assert created.returncode == 0, created.stderr


def _tag(fleet: TwinManager, device_id: str, campaign_id: str) -> dict[str, Any]:
    return dict(fleet.twins.get(device_id).tags["twinfleet"][campaign_id])


def test_waves_thresholds_rerun_and_forget(
    hub: LocalHub, tmp_path: Path, simulated: SimulatedFleet
) -> None:
    fleet = TwinManager.from_local_hub(hub)
    refusing = {"on": True}

    def picky(settings: dict[str, Any]) -> None:
        if refusing["on"]:
            raise ValueError("not now")

    rings = {"c-0": "canary", "w-0": "wave", "w-1": "wave", "r-0": "rest"}
    for device_id, ring in rings.items():
        fleet.devices.create(device_id)
        fleet.twins.update_tags(device_id, {"ring": ring})
        simulated.add(
            fleet.devices.connection_string(device_id), tmp_path / device_id,
            ca_cert=hub.ca_certificate, configure=picky if device_id == "w-1" else None,
        )  # fmt: skip
    _eventually(lambda: fleet.queries.count("connectionState = 'Connected'") == 4)
    groups = [
        {"name": "canary", "condition": "tags.ring = 'canary'", "success_threshold": 1},
        {"name": "wave", "condition": "tags.ring = 'wave'", "success_threshold": 0.5},
    ]
    base = {"target": "IS_DEFINED(tags.ring)", "rollout": {"per_minute": 600},
            "timeout_seconds": 60}  # fmt: skip

    # Half the wave succeeding meets its threshold: the rest goes after it.
    _create(hub, tmp_path, {**base, "id": "waves", "groups": groups, "pattern": {
        "kind": "configuration", "version": 1, "settings": {"mode": "eco"}}})  # fmt: skip
    ran = _twinfleet(hub, "campaign", "run", "waves", "--poll", "0.3")
    assert ran.returncode == 4, ran.stdout + ran.stderr  # completed, one device failed
    admitted = {d: times.parse_iso(_tag(fleet, d, "waves")["admittedAt"]) for d in rings}
    assert admitted["c-0"] < min(admitted["w-0"], admitted["w-1"])
    assert max(admitted["w-0"], admitted["w-1"]) < admitted["r-0"]
    assert _tag(fleet, "w-1", "waves")["state"] == "failed"

    # A wave below its success threshold pauses the campaign before the rest.
    strict = [groups[0], {**groups[1], "success_threshold": 1}]
    _create(hub, tmp_path, {**base, "id": "strict", "groups": strict, "pattern": {
        "kind": "configuration", "version": 2, "settings": {"mode": "max"}}})  # fmt: skip
    running = subprocess.Popen(
        [sys.executable, "-m", "twinfleet", "campaign", "run", "strict", "--poll", "0.3",
         "--hub-dir", str(hub.data_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _eventually(lambda: Campaign.load(fleet, "strict").record.status == "paused")
        status = _twinfleet(hub, "campaign", "status", "strict")
        assert "paused" in status.stdout
        assert "below its success threshold" in status.stdout
        assert fleet.twins.get("r-0").desired["configuration"]["version"] == 1  # not sent
        assert _tag(fleet, "r-0", "strict")["state"] == "queued"
        busy = _twinfleet(hub, "campaign", "forget", "strict")
        assert busy.returncode == 1
        assert "cancel it first" in busy.stderr
        assert _twinfleet(hub, "campaign", "cancel", "strict").returncode == 0
        assert running.wait(timeout=60) == 5
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert _tag(fleet, "r-0", "strict")["state"] == "cancelled"

    # Re-run the first campaign once the device accepts: only it is admitted again.
    refusing["on"] = False
    canary_admitted = _tag(fleet, "c-0", "waves")["admittedAt"]
    assert _twinfleet(hub, "campaign", "rerun", "waves").returncode == 0
    again = _twinfleet(hub, "campaign", "run", "waves", "--poll", "0.3")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _tag(fleet, "w-1", "waves")["state"] == "succeeded"
    assert _tag(fleet, "c-0", "waves")["admittedAt"] == canary_admitted

    for campaign_id in ("waves", "strict"):
        forgotten = _twinfleet(hub, "campaign", "forget", campaign_id)
        assert forgotten.returncode == 0, forgotten.stderr
    assert (
        fleet.queries.count("IS_DEFINED(tags.twinfleet.waves) OR IS_DEFINED(tags.twinfleet.strict)")
        == 0
    )
    assert "waves" not in _twinfleet(hub, "campaign", "list").stdout


def test_health_gates_and_maintenance_windows(
    hub: LocalHub, tmp_path: Path, simulated: SimulatedFleet
) -> None:
    fleet = TwinManager.from_local_hub(hub)
    for device_id in ("h-0", "h-1", "h-2"):
        fleet.devices.create(device_id)
        fleet.twins.update_tags(device_id, {"ring": "all"})
        simulated.add(fleet.devices.connection_string(device_id), tmp_path / device_id,
                      ca_cert=hub.ca_certificate)  # fmt: skip
    _eventually(lambda: fleet.queries.count("connectionState = 'Connected'") == 3)
    pattern = {"kind": "configuration", "version": 1, "settings": {"mode": "turbo"}}
    base = {"target": "tags.ring = 'all'", "pattern": pattern, "rollout": {"per_minute": 20}}

    # A window that opens once a year at new year's midnight: nothing is admitted now.
    _create(hub, tmp_path, {**base, "id": "nightly",
                            "window": {"cron": "0 0 1 1 *", "duration_minutes": 1}})  # fmt: skip
    shut = _twinfleet(hub, "campaign", "run", "nightly", "--once")
    assert shut.returncode == 0, shut.stderr
    assert fleet.queries.count("IS_DEFINED(tags.twinfleet.nightly.admittedAt)") == 0
    assert fleet.queries.count("tags.twinfleet.nightly.state = 'queued'") == 3
    assert _twinfleet(hub, "campaign", "cancel", "nightly").returncode == 0

    # Updated devices reporting the bad setting trip the gate: the campaign aborts.
    gate = {"condition": "properties.reported.configuration.settings.mode = 'turbo'",
            "max_fraction": 0.4, "action": "abort"}  # fmt: skip
    _create(hub, tmp_path, {**base, "id": "gated", "health_gates": [gate]})
    ran = _twinfleet(hub, "campaign", "run", "gated", "--poll", "0.3")
    assert ran.returncode == 3, ran.stdout + ran.stderr
    status = Campaign.load(fleet, "gated").status()
    assert status.status == "aborted"
    assert any("health gate" in line for line in status.log)
    assert "admitted" not in status.counts
    assert status.counts.get("cancelled", 0) >= 1
    bad = _twinfleet(hub, "campaign", "create", "from-file", str(tmp_path / "missing.json"))
    assert bad.returncode == 2
