"""Power cuts during a key rotation: the agent is a real process (`python -m device_agent
--config ...`), killed with SIGKILL at a chosen point of the rotation, then started again; the
rotation campaign converges, the device ends on the new key (promoted to primary), and the old
key is refused.

The cut points are reached through the public handler API only: the settings' `handlers` load a
`KeyRotationHandler` subclass (a module written into the test's folder) whose agent and method
call are wrapped, so the process kills itself:

- `before-ack`: the new key is saved, the method not yet answered (the back end's call times out);
- `before-reconnect`: answered, not yet reconnected with the new key;
- `before-report`: connected with the new key and saved it as current, not yet reported;
- `before-ack` with the back end replacing the secondary key meanwhile (as a retry would): at the
  next boot the hub refuses the saved key, the device falls back to its old key, says so, and a
  retry succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local_hub import LocalHub
from patterns.builtin import key_rotation
from patterns.campaigns import Campaign, CampaignSpec, Retries, Rollout
from patterns.contracts import key_rotation as contract
from twin_manager import TwinManager

CUTTING = """
import os, pathlib, signal

from device_agent.handlers import api
from device_agent.handlers.key_rotation import KeyRotationHandler

POINT = os.environ["KEY_CUT_AT"]
MARK = pathlib.Path(os.environ["KEY_CUT_MARK"])


def cut(point):
    if point == POINT and not MARK.exists():
        MARK.write_text(point)
        os.kill(os.getpid(), signal.SIGKILL)


class _Agent:
    def __init__(self, agent):
        self._agent = agent

    def __getattr__(self, name):
        return getattr(self._agent, name)

    async def reconnect(self):
        cut("before-reconnect")
        await self._agent.reconnect()

    def report(self, patch):
        if (patch.get("keyRotation") or {}).get("status") == "rotated":
            cut("before-report")
        self._agent.report(patch)


class Cutting(KeyRotationHandler):
    def connected(self, key, agent):
        super().connected(key, _Agent(agent))

    async def invoke(self, call, agent):
        async def answer(status, payload):
            cut("before-ack")
            await call.answer(status, payload)

        await super().invoke(api.Invocation(call.name, call.payload, answer), _Agent(agent))
"""


class Agent:
    """The agent as a process; `start()` again after it died."""

    def __init__(self, config: Path, log: Path, environ: dict[str, str]) -> None:
        self.config, self.log, self.environ = config, log, environ
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "device_agent", "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=out, env={**os.environ, **self.environ},
            )  # fmt: skip

    def died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.mark.parametrize(
    ("point", "replaced"),
    [("before-ack", False), ("before-reconnect", False), ("before-report", False),
     ("before-ack", True)],
    ids=["before-ack", "before-reconnect", "before-report", "before-ack-key-replaced"],
)  # fmt: skip
def test_a_power_cut_during_a_rotation_converges(
    point: str, replaced: bool, hub: LocalHub, fleet: TwinManager, agent_settings: Any,
    tmp_path: Path, eventually: Callable[..., Any],
) -> None:  # fmt: skip
    device_id = f"cut-{point}{'-replaced' if replaced else ''}"
    (tmp_path / "cutting.py").write_text(CUTTING)
    config = agent_settings(device_id, handlers=("cutting:Cutting",))
    old = fleet.devices.get(device_id).primary_key or ""
    mark = tmp_path / "cut"
    agent = Agent(config, tmp_path / "agent.log", {"PYTHONPATH": str(tmp_path),
                  "KEY_CUT_AT": point, "KEY_CUT_MARK": str(mark)})  # fmt: skip
    agent.start()
    try:
        eventually(lambda: contract.SECTION in fleet.twins.get(device_id).reported, 90,
                   "the device's key report")  # fmt: skip
        spec = CampaignSpec(
            id="cut", target=f"deviceId = '{device_id}'", rollout=Rollout(per_minute=600),
            pattern=key_rotation.KeyRotation(method_timeout=10),
            retries=Retries(max_attempts=3, backoff_seconds=1), timeout_seconds=90,
        )  # fmt: skip
        campaign = Campaign.create(fleet, spec)
        deadline = time.monotonic() + 60
        while not agent.died():  # the method call is where the power goes out
            assert time.monotonic() < deadline, "the cut point was never reached"
            campaign.tick()
            time.sleep(0.2)
        assert mark.read_text() == point
        identity = fleet.devices.get(device_id)
        if replaced:  # the back end moved on (a retry's new key) while the device was off
            fleet.devices.set_keys(device_id, identity.primary_key or "", key_rotation.new_key(),
                           if_match=identity.etag or "*")  # fmt: skip
        agent.start()  # power back: the agent boots from what it saved
        if replaced:
            report = eventually(
                lambda: (fleet.twins.get(device_id).reported[contract.SECTION]
                         if fleet.twins.get(device_id).reported[contract.SECTION].get("status")
                         == "refused" else None), 90, "the refused key's report",
            )  # fmt: skip
            assert report["fingerprint"] == contract.fingerprint(old)
            assert report["campaignId"] == "cut:1"
        deadline = time.monotonic() + 120
        while (status := campaign.tick()).status != "completed":
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status.counts == {"succeeded": 1}, status
        new = fleet.devices.get(device_id).primary_key or ""
        reported = fleet.twins.get(device_id).reported[contract.SECTION]
        assert reported["fingerprint"] == contract.fingerprint(new) != contract.fingerprint(old)
        assert reported["status"] == "rotated"
        # The saved key carried the first attempt through; a replaced one took a retry.
        assert reported["campaignId"] == ("cut:2" if replaced else "cut:1")
        saved = (config.parent / "state" / "agent" / "keys" / "keys.json").read_text()
        assert new in saved
        eventually(lambda: fleet.twins.get(device_id).connection_state == "Connected")
        log = agent.log.read_text()
        assert new not in log
        assert old not in log
    finally:
        agent.stop()
