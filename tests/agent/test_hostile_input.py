"""The agent's side of the JSON boundary, and what a caller sees when a direct method carries a
hostile payload: deep nesting, a huge integer, a lone surrogate.

Through the service SDK the caller always gets a 400 naming the problem, and the device's handler
never sees the payload: the hub's REST boundary refuses what is not JSON it accepts (a number of
hundreds of digits, a lone surrogate), and the agent answers 400 to what the hub lets through
(IoT Hub bounds only a payload's size) but it does not accept (nesting deeper than 32). The agent's
own check is also driven with every kind of hostile payload over MQTT, sent by the hub's device
endpoint exactly as IoT Hub would relay it (a hub that is not ours may not refuse them).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_agent import DeviceAgent, SimulatedPlatform
from local_hub import LocalHub
from twin_manager import HubError, TwinManager


def _nested(depth: int, inner: Any, *, objects: bool = False) -> Any:
    value = inner
    for _ in range(depth):
        value = {"k": value} if objects else [value]
    return value


HUGE = int("9" * 500)
HOSTILE = {  # name -> (payload, what the refusal names)
    "deep-arrays": (_nested(40, 1), "more than 32 deep"),
    "deep-objects": (_nested(40, 1, objects=True), "more than 32 deep"),
    "huge-int": ({"n": HUGE}, "at most 100 are allowed"),
    "lone-surrogate": ({"text": "a\ud800b"}, "lone UTF-16 surrogate"),
}


@pytest.fixture
def echo_device(
    hub: LocalHub,
    fleet: TwinManager,
    tmp_path: Path,
    eventually: Any,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, list[Any]]]:
    """A connected agent with an `echo` method; yields its id and the payloads its handler saw."""
    device_id = f"echo-{request.node.name}"[:64].replace("[", "-").replace("]", "")
    fleet.devices.create(device_id)
    agent = DeviceAgent(
        fleet.devices.connection_string(device_id), SimulatedPlatform(tmp_path / "p"),
        tmp_path / "a", ca_cert=hub.ca_certificate,
    )  # fmt: skip
    seen: list[Any] = []

    @agent.method("echo")
    def echo(payload: Any) -> tuple[int, Any]:
        seen.append(payload)
        return 200, payload

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(loop.create_task(agent.run()),))
    thread.start()
    try:
        eventually(lambda: fleet.twins.get(device_id).connection_state == "Connected")
        eventually(lambda: fleet.methods.invoke(device_id, "echo", [1], timeout=10).status == 200)
        yield device_id, seen
    finally:
        loop.call_soon_threadsafe(agent.stop)
        thread.join(30)
        loop.close()


def test_a_too_deep_method_payload_is_answered_400(
    fleet: TwinManager, echo_device: tuple[str, list[Any]]
) -> None:
    device_id, seen = echo_device
    refused = fleet.methods.invoke(device_id, "echo", _nested(40, 1), timeout=10)
    assert refused.status == 400
    assert "more than 32 deep" in refused.payload["error"]
    assert seen == [[1]]


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_the_caller_sees_400_for_a_hostile_payload_through_the_service_sdk(
    fleet: TwinManager, echo_device: tuple[str, list[Any]], kind: str
) -> None:
    device_id, seen = echo_device
    payload, named = HOSTILE[kind]
    try:
        result = fleet.methods.invoke(device_id, "echo", payload, timeout=10)
        status, message = result.status, str(result.payload["error"])  # the agent refused it
    except HubError as exc:  # the hub's REST boundary refused it, IoT Hub's way
        status, message = exc.status or 0, str(exc)
    assert status == 400, message
    assert named in message
    assert fleet.methods.invoke(device_id, "echo", {"after": kind}, timeout=10).status == 200
    assert seen == [[1], {"after": kind}]  # the handler never saw the hostile payload


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_the_agent_answers_400_to_a_hostile_payload_relayed_over_mqtt(
    hub: LocalHub, fleet: TwinManager, echo_device: tuple[str, list[Any]], kind: str
) -> None:
    device_id, seen = echo_device
    payload, named = HOSTILE[kind]
    status, answer = hub.call(
        hub.server.endpoint.invoke_method(
            device_id, "echo", payload, connect_timeout=5, response_timeout=10
        ),
        timeout=30,
    )
    assert status == 400, answer
    assert named in answer["error"]
    assert fleet.methods.invoke(device_id, "echo", {"after": kind}, timeout=10).status == 200
    assert seen == [[1], {"after": kind}]
