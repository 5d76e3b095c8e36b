"""How `campaign run` ends, as a script sees it: exit codes for completed, failed, aborted and
cancelled campaigns; `--abort-percent` with `--min-finished`; and a `fleet simulate` whose devices
refuse settings, all in child processes (firmware retries after a failed first boot, with
`--backoff`, are in test_artifact_commands.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device_agent import SimulatedFleet
from local_hub import LocalHub
from twin_manager import TwinManager
from twinfleet.cli.fleet import settings_rejecter

TARGET = "deviceId IN ['sim-0000', 'sim-0001', 'sim-0002']"


def _twinfleet(hub: LocalHub, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "twinfleet", *args, "--hub-dir", str(hub.data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def _eventually(check: Callable[[], Any], timeout: float = 45) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)
    return value


def _config(hub: LocalHub, campaign_id: str, version: int, *options: str) -> None:
    created = _twinfleet(
        hub, "campaign", "create", "config", campaign_id, "--settings",
        '{"mode": "eco", "interval": 5}', "--config-version", str(version), "--target", TARGET,
        "--rate", "600", *options,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr


def test_simulated_failures_and_how_campaign_run_exits(hub: LocalHub, tmp_path: Path) -> None:
    fleet = TwinManager.from_local_hub(hub)
    simulate = subprocess.Popen(
        [sys.executable, "-m", "twinfleet", "fleet", "simulate", "--hub-dir", str(hub.data_dir),
         "--devices", "3", "--state-root", str(tmp_path / "devices"),
         "--reject-settings", "mode,colour"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _eventually(lambda: fleet.queries.count("connectionState = 'Connected'") == 3)
        # Every device refuses `mode`: with 3 devices, the default minimum of 5 finished devices
        # is never reached, so the campaign completes with failures...
        _config(hub, "cfg_a", 2, "--abort-percent", "50")
        completed = _twinfleet(hub, "campaign", "run", "cfg_a", "--poll", "0.3")
        assert completed.returncode == 4, completed.stdout + completed.stderr
        assert "completed with 3 devices failed" in completed.stderr
        reported = fleet.twins.get("sim-0001").reported["configuration"]
        assert (reported["status"], reported["error"]) == ("error", "unsupported setting 'mode'")
        # ... and with --min-finished 2 the same failures abort it.
        _config(hub, "cfg_b", 3, "--abort-percent", "50", "--min-finished", "2")
        aborted = _twinfleet(hub, "campaign", "run", "cfg_b", "--poll", "0.3")
        assert aborted.returncode == 3, aborted.stdout + aborted.stderr
        assert "aborted" in aborted.stdout

    finally:
        simulate.send_signal(signal.SIGINT)
        try:
            assert simulate.wait(timeout=20) == 0
        finally:
            if simulate.poll() is None:
                simulate.kill()
                simulate.wait()


def test_a_cancelled_campaign_run_exits_5_once_its_devices_in_flight_ended(
    hub: LocalHub, tmp_path: Path
) -> None:
    fleet = TwinManager.from_local_hub(hub)
    simulated = SimulatedFleet().start()
    try:
        for device_id in ("sim-0000", "sim-0001", "sim-0002"):  # whichever goes first refuses
            fleet.devices.create(device_id)
            simulated.add(
                fleet.devices.connection_string(device_id), tmp_path / device_id,
                ca_cert=hub.ca_certificate, configure=settings_rejecter(frozenset({"mode"})),
            )  # fmt: skip
        _config(hub, "cfg_c", 4, "--rate", "1")
        running = subprocess.Popen(
            [sys.executable, "-m", "twinfleet", "campaign", "run", "cfg_c", "--poll", "0.2",
             "--hub-dir", str(hub.data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _eventually(lambda: fleet.queries.count("tags.twinfleet.cfg_c.state = 'admitted'") >= 1)
            assert _twinfleet(hub, "campaign", "cancel", "cfg_c").returncode == 0
            assert running.wait(timeout=60) == 5  # once its device in flight had an outcome
        finally:
            if running.poll() is None:
                running.kill()
                running.wait()
            assert running.stderr is not None
            running.stderr.close()
        states = fleet.queries.group_by(
            "tags.twinfleet.cfg_c.state", "IS_DEFINED(tags.twinfleet.cfg_c)"
        )
        assert states == {"failed": 1, "cancelled": 2}
    finally:
        simulated.stop()
