"""The device side: an agent with a handler for a twin section and one for a direct method.

python examples/05-device-agent-handler/device_agent_handler.py ./hub

The agent reads the whole twin when it connects and calls the section's handler with the desired
value (so a device that was offline catches up), then again on every desired change; what the
handler returns is reported. On a device, the same handlers are given to `twinfleet-agent` in its
settings file (`handlers = ["my_device:handlers"]`) or through the `twinfleet.handlers` entry
point group; for a handler that keeps state or works across reboots, write a class with
`reconcile(desired, agent)` (see `device_agent.handlers.api` and examples/04-custom-pattern).
"""

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device_agent import DeviceAgent, SimulatedPlatform
from twin_manager import DeviceNotFound, TwinManager, read_hub_dir

DEVICE = "example-lamp"


async def reported(fleet: TwinManager, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The device's reported properties, once `wanted` holds for them (the back end's view)."""
    deadline = time.monotonic() + 60
    while not wanted(props := (await asyncio.to_thread(fleet.twins.get, DEVICE)).reported):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{DEVICE} still reports {props}")
        await asyncio.sleep(0.2)
    return props


def make_agent(fleet: TwinManager, hub_dir: str, state: Path) -> DeviceAgent:
    platform = SimulatedPlatform(state / "platform")  # on hardware: CommandPlatform(...)
    platform.boot()  # the bootloader's part, at power-on
    ca_cert = Path(read_hub_dir(hub_dir).ca_file).read_text()
    agent = DeviceAgent(fleet.devices.connection_string(DEVICE), platform, state / "agent",
                        ca_cert=ca_cert)  # fmt: skip

    @agent.section("display")
    def display(desired: dict[str, Any]) -> dict[str, Any]:
        # Runs in a worker thread: blocking I/O to the hardware is fine here.
        print(f"device: brightness set to {desired['brightness']}")
        return {"brightness": desired["brightness"], "status": "on"}

    @agent.method("blink")
    def blink(payload: Any) -> tuple[int, Any]:
        times = int((payload or {}).get("times", 1))
        print(f"device: blinking {times} times")
        return 200, {"blinked": times}

    return agent


async def run(hub_dir: str) -> None:
    with TwinManager.from_hub_dir(hub_dir) as fleet, tempfile.TemporaryDirectory() as state:
        try:
            fleet.devices.get(DEVICE)
        except DeviceNotFound:
            fleet.devices.create(DEVICE)
        fleet.twins.update_desired(DEVICE, {"display": {"brightness": 70}, "speaker": None})

        agent = make_agent(fleet, hub_dir, Path(state))
        running = asyncio.create_task(agent.run())
        # Set before the device connected: it catches up when it reads its twin.
        now = await reported(fleet, lambda r: r.get("display", {}).get("brightness") == 70)
        print("back end: reported display", now["display"])

        # A desired change reaches the running agent as a patch.
        await asyncio.to_thread(fleet.twins.update_desired, DEVICE, {"display": {"brightness": 30}})
        await reported(fleet, lambda r: r.get("display", {}).get("brightness") == 30)
        print("back end: brightness now 30")

        result = await asyncio.to_thread(fleet.methods.invoke, DEVICE, "blink", {"times": 3})
        print(f"back end: blink answered {result.status} {result.payload}")

        # A section no handler covers is not silently ignored: the agent reports it.
        await asyncio.to_thread(fleet.twins.update_desired, DEVICE, {"speaker": {"volume": 5}})
        now = await reported(fleet, lambda r: "agent" in r)
        print("back end: unhandled sections", now["agent"]["unhandledSections"])

        agent.stop()
        print("agent:", await running)


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1]))
