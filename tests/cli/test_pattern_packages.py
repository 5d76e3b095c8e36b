"""A pattern package written here, outside twinfleet's packages (its own module and a
`*.dist-info` with entry points, on PYTHONPATH): found by `twinfleet patterns list`, run as a
campaign from the CLI, and on a device under `twinfleet agent run --app`, with no change to
twinfleet. Real processes, the real hub and the real SDKs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from local_hub import LocalHub
from twin_manager import TwinManager

_MODULE = '''
"""A schedule pattern: the back end sets desired `schedule`, the device applies it."""
from typing import Any, Literal

from patterns import api


class Schedule(api.Params):
    kind: Literal["schedule"] = "schedule"
    cron: str


class SchedulePattern:
    kind = "schedule"
    params = Schedule
    description = "Set when the device does its nightly work."

    def apply(self, params: Schedule, device: api.Device) -> api.Verdict:
        section = {"cron": params.cron, "campaignId": device.attempt.tag}
        device.fleet.twins.update_desired(device.device_id, {"schedule": section})
        return api.Verdict.in_progress()

    def outcome(self, params: Schedule, device: api.Device) -> api.Verdict:
        reported = device.reported.get("schedule") or {}
        if reported.get("campaignId") != device.attempt.tag:
            return api.Verdict.in_progress()
        if reported.get("status") == "applied":
            return api.Verdict.succeeded()
        return api.Verdict.failed(str(reported.get("error")))

    def rollback(self, params: Schedule) -> None:
        return None


pattern = SchedulePattern()


class ScheduleHandler:
    kind = "schedule"
    section = "schedule"

    async def reconcile(self, desired: Any, agent: Any) -> None:
        if desired is None:
            return
        status = "applied" if desired["cron"].count(" ") == 4 else "error"
        agent.report({"schedule": {"cron": desired["cron"], "status": status,
                                   "campaignId": desired.get("campaignId")}})


handlers = [ScheduleHandler]
'''


def _package(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "my_schedule.py").write_text(textwrap.dedent(_MODULE))
    info = root / "my_schedule-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-schedule\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[twinfleet.patterns]\nschedule = my_schedule:pattern\n")
    paths = [str(root), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _twinfleet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twinfleet", *args], capture_output=True,
                          text=True, timeout=90, env=env, check=False)  # fmt: skip


def test_a_pattern_package_runs_from_the_cli(hub: LocalHub, tmp_path: Path) -> None:
    env = _package(tmp_path / "site")
    listed = _twinfleet(env, "patterns", "list")
    assert listed.returncode == 0, listed.stderr
    assert "schedule" in listed.stdout
    assert "cron: str" in listed.stdout
    assert "schedule" not in _twinfleet(dict(os.environ), "patterns", "list").stdout

    fleet = TwinManager.from_local_hub(hub)
    fleet.devices.create("plug-1")
    agent = subprocess.Popen(
        [sys.executable, "-m", "twinfleet", "agent", "run", "--simulated",
         "--connection-string", fleet.devices.connection_string("plug-1"),
         "--ca-cert", hub.ca_certificate_path, "--state-dir", str(tmp_path / "device"),
         "--app", "my_schedule:handlers"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        hub_dir = ("--hub-dir", str(hub.data_dir))
        created = _twinfleet(
            env, "campaign", "create", "schedule", "nightly", *hub_dir,
            "--target", "deviceId = 'plug-1'", "--param", "cron=0 2 * * *",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        ran = _twinfleet(env, "campaign", "run", "nightly", "--poll", "0.2", *hub_dir)
        assert ran.returncode == 0, ran.stderr
        assert "succeeded" in ran.stdout
        reported = fleet.twins.get("plug-1").reported["schedule"]
        assert reported == {"cron": "0 2 * * *", "status": "applied", "campaignId": "nightly:1"}
    finally:
        agent.send_signal(signal.SIGINT)
        try:
            agent.wait(timeout=20)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            assert agent.stderr is not None
            agent.stderr.close()
            assert agent.stderr is not None
            agent.stderr.close()


def test_bad_params_and_unknown_apps_are_one_line_errors(hub: LocalHub, tmp_path: Path) -> None:
    env = _package(tmp_path / "site")
    hub_dir = ("--hub-dir", str(hub.data_dir))
    missing = _twinfleet(env, "campaign", "create", "schedule", "x", *hub_dir, "--target", "true")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error:")
    assert "cron" in missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = _twinfleet(env, "campaign", "create", "nosuch", "x", *hub_dir, "--target", "true")
    assert unknown.returncode == 2
    assert "No such command 'nosuch'" in unknown.stderr
    device = "HostName=127.0.0.1;DeviceId=d;SharedAccessKey=" + "a" * 43 + "="
    app = _twinfleet(
        env, "agent", "run", "--simulated", "--connection-string", device,
        "--state-dir", str(tmp_path / "s"), "--app", "my_schedule:nothing",
    )  # fmt: skip
    assert app.returncode == 2
    assert "has no attribute 'nothing'" in app.stderr


def test_installed_handlers_are_found_and_bad_ones_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from device_agent.handlers import HandlerError, api

    root = tmp_path / "site"
    _package(root)
    (root / "my_schedule-1.0.dist-info" / "entry_points.txt").write_text(
        "[twinfleet.handlers]\nschedule = my_schedule:handlers\nbroken = my_schedule:pattern\n"
    )
    monkeypatch.syspath_prepend(str(root))
    with pytest.raises(HandlerError, match=r"'broken'.*is not a handler"):
        api.installed()
    (root / "my_schedule-1.0.dist-info" / "entry_points.txt").write_text(
        "[twinfleet.handlers]\nschedule = my_schedule:handlers\n"
    )
    # twinfleet's own key rotation is installed through the same entry-point group
    assert sorted(h.kind for h in api.installed()) == ["keyRotation", "schedule"]
    sys.modules.pop("my_schedule", None)
