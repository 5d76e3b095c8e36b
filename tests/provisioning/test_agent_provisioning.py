"""The agent provisions itself: real agent processes (`twinfleet agent run`, `twinfleet-agent`)
that know only a provisioning host, an ID scope, a registration id and a derived key, against a
real local DPS and hub on loopback, through the unmodified device SDK."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device_agent import Backoff, Credentials, Provisioner
from local_hub import LocalHub
from local_hub.provisioning import derive_device_key
from tests.provisioning.conftest import RunningDps
from twin_manager import DeviceNotFound, TwinManager


def _eventually(check: Callable[[], Any], timeout: float = 60, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.2)
    return value


class Agent:
    """An agent process with its stderr in a file; stopped by SIGTERM."""

    def __init__(self, command: list[str], log: Path, **environ: str) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=out, env={**os.environ, **environ}
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def agents() -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def start(command: list[str], log: Path, **environ: str) -> Agent:
        agent = Agent(command, log, **environ)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


def _group_key(dps: RunningDps, group_id: str, registration_id: str, **options: Any) -> str:
    group = dps.enrollments().create_group(group_id, **options)
    return derive_device_key(group["attestation"]["symmetricKey"]["primaryKey"], registration_id)


def _settings(
    dps: RunningDps, folder: Path, registration_id: str, key: str, ca_file: Path | None = None,
    retry: tuple[float, float] = (0.5, 2),
) -> Path:  # fmt: skip
    """A settings file for a provisioned device (key in a 0600 key file, fast retries)."""
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "device.key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    path = folder / "agent.toml"
    ca = str(ca_file or dps.info["caCertificatePath"])
    path.write_text(
        f'state_dir = "state"\n[connection]\nkey_file = "device.key"\n'
        f"ca_file = {json.dumps(ca)}\nkeep_alive = 10\n"
        f"[connection.provisioning]\nprovisioning_host = {json.dumps(dps.host)}\n"
        f"id_scope = {json.dumps(dps.id_scope)}\nregistration_id = {json.dumps(registration_id)}\n"
        f"retry_initial = {retry[0]}\nretry_max = {retry[1]}\n"
        '[platform]\nkind = "simulated"\n'
    )
    return path


def _connected(fleet: TwinManager, device_id: str) -> bool:
    try:
        return fleet.twins.get(device_id).connection_state == "Connected"
    except DeviceNotFound:
        return False


def _refused(caplog: pytest.LogCaptureFixture) -> int:
    """Registrations the provisioning service refused because the enrollment is disabled."""
    return sum("its enrollment is disabled" in r.getMessage() for r in caplog.records)


def _registrations(agent: Agent) -> int:
    return len(re.findall(r"registering \S+ with ", agent.text()))


def test_an_agent_provisions_itself_converges_and_restarts_on_its_stored_hub_without_dps(
    hub: LocalHub, make_dps: Callable[..., RunningDps], agents: Callable[..., Agent],
    tmp_path: Path,
) -> None:  # fmt: skip
    dps = make_dps([hub])
    key = _group_key(dps, "line-a", "sensor-1", initial_twin={"tags": {"line": "a"}})
    fleet = TwinManager.from_local_hub(hub)
    state = tmp_path / "state"
    command = [
        "run", "--dps-host", dps.host, "--id-scope", dps.id_scope, "--registration-id",
        "sensor-1", "--ca-cert", dps.info["caCertificatePath"], "--state-dir", str(state),
        "--simulated",
    ]  # fmt: skip
    first = agents(
        [sys.executable, "-m", "twinfleet", "agent", *command, "--symmetric-key", key],
        tmp_path / "first.log",
    )
    _eventually(lambda: _connected(fleet, "sensor-1"), what="the device connecting")
    assert fleet.twins.get("sensor-1").tags == {"line": "a"}  # the group's initial twin
    fleet.twins.update_desired("sensor-1", {"configuration": {"version": 1, "interval": 15}})
    _eventually(
        lambda: (
            fleet.twins.get("sensor-1").reported.get("configuration", {}).get("status") == "applied"
        ),
        what="the device applying its configuration",
    )
    stored = json.loads((state / "agent" / "assignment.json").read_text())
    assert (stored["assigned_hub"], stored["device_id"]) == (hub.host, "sensor-1")
    assert first.stop() == 0

    dps.close()  # later boots need no provisioning service
    second = agents(
        [sys.executable, "-m", "device_agent", *command[1:]],
        tmp_path / "second.log",
        TWINFLEET_DEVICE_SYMMETRIC_KEY=key,
    )
    _eventually(lambda: _connected(fleet, "sensor-1"), what="the device connecting again")
    _eventually(lambda: "connected to the hub as sensor-1" in second.text())
    assert _registrations(first) == 1
    assert _registrations(second) == 0
    assert second.stop() == 0
    for agent in (first, second):
        assert key not in agent.text()


def test_a_deleted_identity_makes_the_agent_provision_again_and_the_device_come_back(
    hub: LocalHub, make_dps: Callable[..., RunningDps], agents: Callable[..., Agent],
    tmp_path: Path,
) -> None:  # fmt: skip
    dps = make_dps([hub])
    key = _group_key(dps, "line-b", "sensor-2", initial_twin={"tags": {"line": "b"}})
    fleet = TwinManager.from_local_hub(hub)
    config = _settings(dps, tmp_path / "device", "sensor-2", key)
    agent = agents([sys.executable, "-m", "device_agent", "--config", str(config)],
                   tmp_path / "agent.log")  # fmt: skip
    _eventually(lambda: _connected(fleet, "sensor-2"), what="the device connecting")
    fleet.devices.delete("sensor-2")

    # The hub drops it and refuses its reconnection; it registers again and DPS recreates it.
    _eventually(lambda: _connected(fleet, "sensor-2"), timeout=90, what="the device returning")
    assert fleet.twins.get("sensor-2").tags == {"line": "b"}
    text = agent.text()
    assert "the hub refused sensor-2" in text
    assert "provisioning again in" in text
    assert _registrations(agent) == 2
    assert agent.process.poll() is None
    assert key not in text


def test_a_device_disabled_in_its_hub_after_its_group_moved_follows_to_the_new_hub(
    make_hub: Callable[..., LocalHub], make_dps: Callable[..., RunningDps],
    agents: Callable[..., Agent], tmp_path: Path,
) -> None:  # fmt: skip
    first, second = make_hub(), make_hub()
    dps = make_dps([first, second])
    enrollments = dps.enrollments()
    group = enrollments.create_group("line-m", iot_hubs=[first.host])
    pair = group["attestation"]["symmetricKey"]
    key = derive_device_key(pair["primaryKey"], "sensor-4")
    old, new = TwinManager.from_local_hub(first), TwinManager.from_local_hub(second)
    # Each local hub has a CA of its own (on Azure, every hub has a public one): the device
    # trusts both, as a device trusts every hub its enrollment may send it to.
    bundle = tmp_path / "hubs-ca.pem"
    bundle.write_text(first.ca_certificate + second.ca_certificate)
    config = _settings(dps, tmp_path / "device", "sensor-4", key, ca_file=bundle)
    agent = agents([sys.executable, "-m", "device_agent", "--config", str(config)],
                   tmp_path / "agent.log")  # fmt: skip
    _eventually(lambda: _connected(old, "sensor-4"), what="the device connecting")
    old.twins.update_tags("sensor-4", {"site": "plant-7"})
    enrollments.create_group(
        "line-m", iot_hubs=[second.host], primary_key=pair["primaryKey"],
        secondary_key=pair["secondaryKey"], replace=True,
    )  # fmt: skip
    old.devices.set_enabled("sensor-4", False)  # the operator sends it on its way

    _eventually(lambda: _connected(new, "sensor-4"), timeout=90, what="the device moving")
    assert new.twins.get("sensor-4").tags == {"site": "plant-7"}  # migrated with it
    with pytest.raises(DeviceNotFound):
        old.devices.get("sensor-4")
    stored = json.loads((tmp_path / "device" / "state" / "agent" / "assignment.json").read_text())
    assert stored["assigned_hub"] == second.host
    assert key not in agent.text()


def test_a_disabled_enrollment_keeps_the_agent_backing_off_never_in_a_hot_loop(
    hub: LocalHub, make_dps: Callable[..., RunningDps], agents: Callable[..., Agent],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="local_hub.provisioning")
    dps = make_dps([hub])
    key = _group_key(dps, "line-c", "sensor-3")
    enrollments = dps.enrollments()
    fleet = TwinManager.from_local_hub(hub)
    config = _settings(dps, tmp_path / "device", "sensor-3", key)
    agent = agents([sys.executable, "-m", "device_agent", "--config", str(config)],
                   tmp_path / "agent.log")  # fmt: skip
    _eventually(lambda: _connected(fleet, "sensor-3"), what="the device connecting")
    enrollments.set_group_enabled("line-c", False)
    fleet.devices.delete("sensor-3")

    _eventually(lambda: "was not assigned" in agent.text() or "failed:" in agent.text(),
                timeout=90, what="a refused registration")  # fmt: skip
    start, refused_before = _registrations(agent), _refused(caplog)
    window = 10.0
    time.sleep(window)  # the agent's backoff at work, watched from outside
    attempts = _registrations(agent) - start
    assert abs((_refused(caplog) - refused_before) - attempts) <= 1  # as the service saw it
    # retry_initial 0.5 s doubling to retry_max 2 s, jittered to at least half: at most one
    # attempt a second over the window. A hot loop would make hundreds.
    assert 2 <= attempts <= window + 1, attempts
    delays = [float(d) for d in re.findall(r"registering again in ([0-9.]+) s", agent.text())]
    assert all(0.25 <= d <= 2 for d in delays), delays
    assert agent.process.poll() is None

    enrollments.set_group_enabled("line-c", True)  # it keeps trying, so it comes back
    _eventually(lambda: _connected(fleet, "sensor-3"), what="the device returning")


def test_fleet_simulate_provisions_each_device_through_the_dps(
    hub: LocalHub, make_dps: Callable[..., RunningDps], agents: Callable[..., Agent],
    tmp_path: Path,
) -> None:  # fmt: skip
    dps = make_dps([hub])
    dps.enrollments().create_group("line-d", initial_twin={"tags": {"line": "d"}})
    fleet = TwinManager.from_local_hub(hub)
    simulate = agents(
        [sys.executable, "-m", "twinfleet", "fleet", "simulate", "--dps-dir", str(dps.data_dir),
         "--enrollment-group", "line-d", "--devices", "3", "--prefix", "pump",
         "--state-root", str(tmp_path / "devices")],
        tmp_path / "simulate.log",
    )  # fmt: skip
    _eventually(lambda: fleet.queries.count("connectionState = 'Connected'") == 3, what="3 devices")
    assert fleet.queries.count("tags.line = 'd'") == 3
    registered = {r["registrationId"]: r for r in dps.enrollments().registrations()}
    assert sorted(registered) == ["pump-0000", "pump-0001", "pump-0002"]
    assert {r["assignedHub"] for r in registered.values()} == {hub.host}
    for name in registered:
        assert (tmp_path / "devices" / name / "agent" / "assignment.json").is_file()
    simulate.process.send_signal(signal.SIGINT)
    assert simulate.process.wait(timeout=30) == 0

    unknown = subprocess.run(
        [sys.executable, "-m", "twinfleet", "fleet", "simulate", "--dps-dir", str(dps.data_dir),
         "--enrollment-group", "line-z", "--state-root", str(tmp_path / "devices")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert unknown.returncode == 2
    assert unknown.stderr == (
        "error: There is no enrollment group 'line-z'. Create it with `twinfleet dps "
        "enrollment-group create`.\n"
    )


class _Stop(Exception):
    """Ends a registration loop once the test has seen enough of it."""


def test_the_provisioner_keeps_its_assignment_per_registration_and_backs_off_on_refusals(
    hub: LocalHub, make_dps: Callable[..., RunningDps], tmp_path: Path
) -> None:
    dps = make_dps([hub])
    group = dps.enrollments().create_group("line-p")
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the injected clock: note the wait, skip it
        waits.append(seconds)
        if len(waits) >= 4:
            raise _Stop

    def provisioner(registration_id: str, key: str | None = None) -> Provisioner:
        credentials = Credentials(dps.host, dps.id_scope, registration_id,
                                  key or derive_device_key(group_key, registration_id))  # fmt: skip
        return Provisioner(credentials, tmp_path / "state", ca_pem=dps.ca_pem,
                           backoff=Backoff(1, 8, rng=lambda: 1.0), sleep=sleep)  # fmt: skip

    first = asyncio.run(provisioner("valve-1").assignment())
    assert (first.assigned_hub, first.device_id) == (hub.host, "valve-1")
    assert asyncio.run(provisioner("valve-1").assignment()) == first  # stored: no DPS needed
    other = asyncio.run(provisioner("valve-2").assignment())  # other credentials: registers
    assert other.device_id == "valve-2"
    assert provisioner("valve-1").stored() is None
    (tmp_path / "state" / "assignment.json").write_text("{not json")
    assert provisioner("valve-2").stored() is None  # a torn or foreign file is not trusted

    wrong = derive_device_key(group_key, "someone-else")
    with pytest.raises(_Stop):
        asyncio.run(provisioner("valve-3", wrong).assignment())
    assert waits == [1, 2, 4, 8]  # doubling to the cap (jitter pinned to its top)


def test_a_stop_while_the_agent_backs_off_ends_it_at_once(
    hub: LocalHub, make_dps: Callable[..., RunningDps], agents: Callable[..., Agent],
    tmp_path: Path,
) -> None:  # fmt: skip
    dps = make_dps([hub])
    key = _group_key(dps, "line-s", "sensor-5")
    fleet = TwinManager.from_local_hub(hub)
    config = _settings(dps, tmp_path / "device", "sensor-5", key, retry=(600, 600))
    agent = agents([sys.executable, "-m", "device_agent", "--config", str(config)],
                   tmp_path / "agent.log")  # fmt: skip
    _eventually(lambda: _connected(fleet, "sensor-5"), what="the device connecting")
    fleet.devices.delete("sensor-5")  # refused after a connected session: a 5-10 minute wait
    _eventually(lambda: "provisioning again in" in agent.text(), what="the refusal")
    stopped = time.monotonic()
    assert agent.stop() == 0
    assert time.monotonic() - stopped < 20
    assert "received SIGTERM: stopping" in agent.text()
