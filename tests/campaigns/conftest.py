"""Campaign tests: the real hub, the real service SDK (through twin_manager) and, where devices
must act, real agents on simulated platforms through the device SDK. Time is an injected clock
where the test is about time (rates, timeouts), so nothing waits on the wall clock for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device_agent import SimulatedFleet
from local_hub import LocalHub
from twin_manager import TwinManager


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fleet(hub: LocalHub) -> Iterator[TwinManager]:
    with TwinManager.from_local_hub(hub) as manager:
        yield manager


@pytest.fixture
def devices(fleet: TwinManager) -> Callable[..., list[str]]:
    """Register devices with tags; returns their ids."""

    def make(count: int, prefix: str = "d", **tags: Any) -> list[str]:
        ids = [f"{prefix}-{i:03d}" for i in range(count)]
        for device_id in ids:
            fleet.devices.create(device_id)
            fleet.twins.update_tags(device_id, {"kind": "sensor", **tags})
        return ids

    return make


@pytest.fixture
def agents(hub: LocalHub, fleet: TwinManager, tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Run real agents (simulated platforms) for the given device ids."""
    simulated = SimulatedFleet().start()

    def run(ids: list[str], **options: Any) -> None:
        for device_id in ids:
            simulated.add(
                fleet.devices.connection_string(device_id), tmp_path / "devices" / device_id,
                ca_cert=hub.ca_certificate, image_ca_file=hub.ca_certificate_path, **options,
            )  # fmt: skip

    yield run
    simulated.stop()
