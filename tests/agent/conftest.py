"""Agent tests: the real device SDK against a real LocalHub, images served by the hub's artifact
endpoint over HTTPS; the device's hardware is a SimulatedPlatform (A/B slots as files)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device_agent import run_simulated_device
from local_hub import LocalHub
from twin_manager import TwinManager


@pytest.fixture
def fleet(hub: LocalHub) -> Iterator[TwinManager]:
    with TwinManager.from_local_hub(hub) as manager:
        yield manager


class SimDevice:
    """A simulated device running on a thread of its own until stopped."""

    def __init__(self, hub: LocalHub, connection_string: str, root: Path, **options: Any) -> None:
        self._args = (connection_string, root)
        self._options = {"ca_cert": hub.ca_certificate, "image_ca_file": hub.ca_certificate_path,
                         **options}  # fmt: skip
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[int] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-device")
        self.reboots: int | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(run_simulated_device(*self._args, **self._options))
            self._ready.set()
            try:
                self.reboots = await self._task
            except asyncio.CancelledError:
                pass
            except BaseException as exc:
                self.error = exc

        asyncio.run(main())

    def start(self) -> SimDevice:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(30)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


@pytest.fixture
def sim_device(
    hub: LocalHub, fleet: TwinManager, tmp_path: Path
) -> Iterator[Callable[..., SimDevice]]:
    """Register a device and run a simulated device for it (stopped after the test)."""
    started: list[SimDevice] = []

    def make(device_id: str, start: bool = True, **options: Any) -> SimDevice:
        try:
            fleet.devices.get(device_id)
        except Exception:
            fleet.devices.create(device_id)
        device = SimDevice(
            hub, fleet.devices.connection_string(device_id), tmp_path / device_id, **options
        )
        if start:
            device.start()
        started.append(device)
        return device

    yield make
    for device in started:
        if device._thread.is_alive():
            device.stop()


def _eventually(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.1)


@pytest.fixture
def eventually() -> Callable[..., Any]:
    """Poll a check until it returns something true (and return that), or fail."""
    return _eventually


def _toml(value: Any) -> str:
    """A TOML value for a string, number, bool or list of strings (JSON's escapes are TOML's)."""
    return json.dumps(value)


@pytest.fixture
def agent_settings(hub: LocalHub, fleet: TwinManager, tmp_path: Path) -> Callable[..., Path]:
    """Register a device and write a `twinfleet-agent` settings file for it; returns its path.

    `write(device_id, platform=None, handlers=(), log_level="info")`: the device key goes to a
    key file (0600) beside the settings, the hub's CA is trusted, the state folder is
    `tmp_path/<device_id>/state`; `platform` is a dict for the [platform] table (simulated when
    not given).
    """

    def write(
        device_id: str, *, platform: dict[str, Any] | None = None,
        handlers: tuple[str, ...] = (), log_level: str = "info",
    ) -> Path:  # fmt: skip
        fleet.devices.create(device_id)
        fields = dict(
            part.split("=", 1) for part in fleet.devices.connection_string(device_id).split(";")
        )
        folder = tmp_path / device_id
        folder.mkdir(parents=True, exist_ok=True)
        key_file = folder / "device.key"
        key_file.write_text(fields["SharedAccessKey"] + "\n")
        key_file.chmod(0o600)
        table = platform or {"kind": "simulated"}
        lines = [
            f"state_dir = {_toml(str(folder / 'state'))}",
            f"log_level = {_toml(log_level)}",
            f"handlers = {_toml(list(handlers))}",
            "[connection]",
            'key_file = "device.key"',
            f"device_id = {_toml(device_id)}",
            f"hub_host = {_toml(fields['HostName'])}",
            f"gateway_host = {_toml(fields['GatewayHostName'])}",
            f"ca_file = {_toml(hub.ca_certificate_path)}",
            "keep_alive = 10",
            "[platform]",
            *(f"{key} = {_toml(value)}" for key, value in table.items()),
        ]
        path = folder / "agent.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
