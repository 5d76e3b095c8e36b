"""`twinfleet agent run` and `twinfleet fleet simulate` as an operator runs them."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_hub import LocalHub
from twin_manager import TwinManager


def _eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)
    return value


def _twinfleet(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "twinfleet", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()
    return code


def test_fleet_simulate_connects_every_device(hub: LocalHub, tmp_path: Path) -> None:
    fleet = TwinManager.from_local_hub(hub)
    process = _twinfleet(
        "fleet", "simulate", "--hub-dir", str(hub.data_dir), "--devices", "3",
        "--state-root", str(tmp_path / "devices"),
    )  # fmt: skip
    try:
        _eventually(lambda: fleet.queries.count("connectionState = 'Connected'") == 3)
        firmware = _eventually(
            lambda: all(
                t.reported.get("firmware", {}).get("currentFwVersion") == "1.0.0"
                for t in fleet.queries.twins()
            )
        )
        assert firmware
    finally:
        assert _stop(process) == 0


def test_fleet_simulate_runs_the_devices_a_query_selects(hub: LocalHub, tmp_path: Path) -> None:
    fleet = TwinManager.from_local_hub(hub)
    for device_id, line in (("boiler-a", "b"), ("boiler-b", "b"), ("pump-x", "p")):
        fleet.devices.create(device_id)
        fleet.twins.update_tags(device_id, {"line": line})
    process = _twinfleet(
        "fleet", "simulate", "--hub-dir", str(hub.data_dir), "--query", "tags.line = 'b'",
        "--state-root", str(tmp_path / "devices"),
    )  # fmt: skip
    try:
        _eventually(lambda: fleet.queries.count("connectionState = 'Connected'") == 2)
        connected = fleet.queries.run(
            "SELECT deviceId FROM devices WHERE connectionState = 'Connected'"
        )
        assert sorted(row["deviceId"] for row in connected) == ["boiler-a", "boiler-b"]
    finally:
        assert _stop(process) == 0
    assert fleet.queries.count() == 3  # nothing registered beside the devices asked for


def test_fleet_simulate_lightweight_devices_follow_the_twin_contract(hub: LocalHub) -> None:
    fleet = TwinManager.from_local_hub(hub)
    process = _twinfleet(
        "fleet", "simulate", "--hub-dir", str(hub.data_dir), "--devices", "20", "--lightweight",
        "--prefix", "lw",
    )  # fmt: skip
    try:
        current = "properties.reported.firmware.currentFwVersion = '1.0.0'"
        _eventually(lambda: fleet.queries.count(current) == 20, timeout=60)
        assert fleet.queries.count("connectionState = 'Connected'") == 20
        fleet.twins.update_desired("lw-0007", {"firmware": {
            "fwVersion": "1.1.0", "fwPackageURI": "https://example.invalid/fw-1.1.0.bin",
            "fwPackageCheckValue": hashlib.sha256(b"1.1.0").hexdigest(), "campaignId": "by-hand",
        }})  # fmt: skip
        updated = "properties.reported.firmware.currentFwVersion = '1.1.0' AND " \
                  "properties.reported.firmware.fwUpdateStatus = 'current'"  # fmt: skip
        _eventually(lambda: fleet.queries.count(updated) == 1)
        assert fleet.twins.get("lw-0007").reported["firmware"]["campaignId"] == "by-hand"
    finally:
        assert _stop(process) == 0


def test_fleet_simulate_without_lightweight_needs_a_state_root(hub: LocalHub) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twinfleet", "fleet", "simulate", "--hub-dir", str(hub.data_dir),
         "--devices", "1"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--state-root DIR is required" in done.stderr


def test_agent_run_updates_and_reexecutes_after_reboot(
    hub: LocalHub, tmp_path: Path, upload: Any
) -> None:
    fleet = TwinManager.from_local_hub(hub)
    fleet.devices.create("cli-agent")
    process = _twinfleet(
        "agent", "run", "--connection-string", fleet.devices.connection_string("cli-agent"),
        "--ca-cert", hub.ca_certificate_path, "--state-dir", str(tmp_path / "agent"), "--simulated",
    )  # fmt: skip
    try:
        _eventually(lambda: fleet.twins.get("cli-agent").reported.get("firmware"))
        image = b"cli image" * 1000
        desired = {"fwVersion": "1.1.0", **upload("cli.bin", image)}
        assert desired["fwPackageCheckValue"] == hashlib.sha256(image).hexdigest()
        fleet.twins.update_desired("cli-agent", {"firmware": desired})
        _eventually(
            lambda: (f := fleet.twins.get("cli-agent").reported.get("firmware", {})).get(
                "currentFwVersion"
            ) == "1.1.0" and f.get("fwUpdateStatus") == "current",
            timeout=60,
        )  # fmt: skip
    finally:
        _stop(process)


def test_agent_killed_with_sigkill_during_an_update_converges(
    hub: LocalHub, tmp_path: Path, upload: Any
) -> None:
    """A real process, killed with SIGKILL three times while it updates, then left to finish."""
    import random

    fleet = TwinManager.from_local_hub(hub)
    fleet.devices.create("killed")
    args = (
        "agent", "run", "--connection-string", fleet.devices.connection_string("killed"),
        "--ca-cert", hub.ca_certificate_path, "--state-dir", str(tmp_path / "agent"), "--simulated",
    )  # fmt: skip
    image = random.Random(3).randbytes(8_000_000)
    desired = {"fwVersion": "2.0.0", **upload("big.bin", image)}
    process = _twinfleet(*args)
    _eventually(lambda: fleet.twins.get("killed").reported.get("firmware"))
    fleet.twins.update_desired("killed", {"firmware": desired})
    rng = random.Random(11)
    for _ in range(3):
        _eventually(lambda: fleet.twins.get("killed").connection_state == "Connected")
        time.sleep(rng.uniform(0.05, 0.6))
        process.kill()
        process.wait()
        _eventually(lambda: fleet.twins.get("killed").connection_state == "Disconnected")
        assert process.stderr is not None
        process.stderr.close()
        firmware = fleet.twins.get("killed").reported["firmware"]
        assert firmware["currentFwVersion"] in ("1.0.0", "2.0.0")
        process = _twinfleet(*args)
    try:
        _eventually(
            lambda: (f := fleet.twins.get("killed").reported.get("firmware", {})).get(
                "currentFwVersion"
            ) == "2.0.0" and f.get("fwUpdateStatus") == "current",
            timeout=90,
        )  # fmt: skip
    finally:
        _stop(process)


def test_agent_run_is_the_agent_command_with_its_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / "agent.toml"
    settings.write_text('state_dir = "s"\n[connection]\nconnection_string = "HostName=h"\n')
    result = subprocess.run(
        [sys.executable, "-m", "twinfleet", "agent", "run", "--config", str(settings)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"twinfleet-agent: error: {settings}: connection: connection_string lacks DeviceId, "
        "SharedAccessKey; use the device's connection string (`twinfleet device "
        "connection-string show` or `az iot hub device-identity connection-string show`)\n"
    )
