"""Simulated devices: a SimulatedPlatform booted and an agent run on it, again after each reboot.

`run_simulated_device` is a device's whole life in one coroutine: power on (`boot`), run the
agent until it stops; a reboot boots again and starts a fresh agent from the persisted state,
exactly as a restarted process would.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from device_agent.agent import DeviceAgent
from device_agent.platforms import SimulatedPlatform

__all__ = ["run_simulated_device"]

log = logging.getLogger(__name__)


async def run_simulated_device(
    connection_string: str, root: Path, *, ca_cert: str | None = None,
    initial_version: str = "1.0.0", max_reboots: int | None = None, **agent_options: Any,
) -> int:  # fmt: skip
    """Run one simulated device until its agent stops; returns how many times it rebooted."""
    platform = SimulatedPlatform(root / "platform", initial_version=initial_version)
    reboots = 0
    while True:
        platform.boot()
        agent = DeviceAgent(
            connection_string, platform, root / "agent", ca_cert=ca_cert, **agent_options
        )
        outcome = await agent.run()
        if outcome != "reboot" or (max_reboots is not None and reboots >= max_reboots):
            return reboots
        reboots += 1
        log.info("simulated device rebooting (%d)", reboots)
