"""Simulated devices: a SimulatedPlatform booted and an agent run on it, again after each reboot.

`run_simulated_device` is a device's whole life in one coroutine: power on (`boot`), run the
agent until it stops; a reboot boots again and starts a fresh agent from the persisted state,
exactly as a restarted process would.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from device_agent.agent import DeviceAgent
from device_agent.platforms import SimulatedPlatform
from device_agent.provisioning import ConnectionSource, FixedConnection, run_sessions

__all__ = ["SimulatedFleet", "run_simulated_device"]

log = logging.getLogger(__name__)


async def run_simulated_device(
    connection: str | ConnectionSource, root: Path, *, ca_cert: str | None = None,
    initial_version: str = "1.0.0", max_reboots: int | None = None, fail_first_boots: int = 0,
    **agent_options: Any,
) -> int:  # fmt: skip
    """Run one simulated device until its agent stops; returns how many times it rebooted.

    `connection` is the device's connection string, or where it comes from: a `Provisioner`
    registers the device with a provisioning service on its first boot and again whenever the
    hub refuses it (`device_agent.provisioning`).
    """
    source = FixedConnection(connection, root.name) if isinstance(connection, str) else connection
    platform = SimulatedPlatform(
        root / "platform", initial_version=initial_version, fail_first_boots=fail_first_boots
    )

    async def session(connection_string: str) -> str:
        agent = DeviceAgent(
            connection_string, platform, root / "agent", ca_cert=ca_cert, **agent_options
        )
        return await agent.run()

    reboots = 0
    while True:
        platform.boot()
        outcome = await run_sessions(source, session)
        if outcome != "reboot" or (max_reboots is not None and reboots >= max_reboots):
            return reboots
        reboots += 1
        log.info("simulated device rebooting (%d)", reboots)


class SimulatedFleet:
    """Many simulated devices on one background event loop; devices can join at any time."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="simulated-fleet")
        self._tasks: list[asyncio.Task[int]] = []

    def start(self) -> SimulatedFleet:
        self._thread.start()
        return self

    def add(self, connection: str | ConnectionSource, root: Path, **options: Any) -> None:
        """Power on one more device (thread-safe): its connection string, or a `Provisioner`."""

        def spawn() -> None:
            coroutine = run_simulated_device(connection, root, **options)
            self._tasks.append(self._loop.create_task(coroutine))

        self._loop.call_soon_threadsafe(spawn)

    def stop(self) -> None:
        """Power every device off and stop the loop."""

        async def shutdown() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(60)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop.close()
