"""The agent's side of the JSON boundary: a method payload the hub lets through (IoT Hub bounds
only its size) but that nests deeper than the agent accepts is answered 400, naming why, and the
handler never sees it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from device_agent import DeviceAgent, SimulatedPlatform
from local_hub import LocalHub
from twin_manager import TwinManager


def test_a_too_deep_method_payload_is_answered_400(
    hub: LocalHub, fleet: TwinManager, tmp_path: Path, eventually: Any
) -> None:
    fleet.devices.create("deep-method")
    agent = DeviceAgent(
        fleet.devices.connection_string("deep-method"), SimulatedPlatform(tmp_path / "p"),
        tmp_path / "a", ca_cert=hub.ca_certificate,
    )  # fmt: skip
    seen: list[Any] = []

    @agent.method("echo")
    def echo(payload: Any) -> tuple[int, Any]:
        seen.append(payload)
        return 200, payload

    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(loop.create_task(agent.run()),))
    thread.start()
    try:
        eventually(lambda: fleet.twins.get("deep-method").connection_state == "Connected")
        eventually(
            lambda: fleet.methods.invoke("deep-method", "echo", [1], timeout=10).status == 200
        )
        refused = fleet.methods.invoke("deep-method", "echo", deep, timeout=10)
        assert refused.status == 400
        assert "more than 32 deep" in refused.payload["error"]
    finally:
        loop.call_soon_threadsafe(agent.stop)
        thread.join(30)
        loop.close()
    assert seen == [[1]]
