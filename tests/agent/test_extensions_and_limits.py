"""Smaller promises of the agent: user sections and methods, the image size limit, the command
platform, and that the agent installs and imports on its own (`twinfleet[agent]`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from device_agent import CommandPlatform, FirmwareUpdater, SimulatedPlatform
from local_hub import LocalHub
from patterns.contracts import FirmwareDesired
from twin_manager import TwinManager


def test_user_sections_and_methods(
    hub: LocalHub, fleet: TwinManager, tmp_path: Path, eventually: Any
) -> None:
    from device_agent import DeviceAgent

    fleet.devices.create("ext-1")
    seen: list[dict[str, Any]] = []
    agent = DeviceAgent(
        fleet.devices.connection_string("ext-1"), SimulatedPlatform(tmp_path / "p"), tmp_path / "a",
        ca_cert=hub.ca_certificate,
    )  # fmt: skip

    @agent.section("leds")
    def leds(desired: dict[str, Any]) -> dict[str, Any]:
        seen.append(desired)
        return {"color": desired["color"], "lit": True}

    @agent.method("blink")
    def blink(payload: Any) -> tuple[int, Any]:
        return 200, {"blinked": payload["times"]}

    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    task = loop.create_task(agent.run())
    thread = threading.Thread(target=loop.run_until_complete, args=(task,))
    thread.start()
    try:
        fleet.twins.update_desired("ext-1", {"leds": {"color": "green"}})
        eventually(
            lambda: fleet.twins.get("ext-1").reported.get("leds") == {"color": "green", "lit": True}
        )
        eventually(lambda: fleet.twins.get("ext-1").connection_state == "Connected")
        assert fleet.methods.invoke("ext-1", "blink", {"times": 3}, timeout=10).payload == {
            "blinked": 3
        }
    finally:
        loop.call_soon_threadsafe(agent.stop)
        thread.join(30)
        loop.close()
    assert seen == [{"color": "green"}]


def test_an_image_over_the_limit_is_an_error(hub: LocalHub, upload: Any, tmp_path: Path) -> None:
    fields = upload("big.bin", b"x" * 10_000)
    reports: list[dict[str, Any]] = []
    platform = SimulatedPlatform(tmp_path / "p")
    updater = FirmwareUpdater(platform, tmp_path / "a", reports.append, max_image_size=5_000,
                              ca_file=hub.ca_certificate_path)  # fmt: skip
    updater.reconcile(FirmwareDesired.model_validate({"fwVersion": "2.0.0", **fields}))
    assert updater.state == "error"
    assert "over the limit" in reports[-1]["firmware"]["fwUpdateSubstatus"]
    assert platform.current_version() == "1.0.0"


def test_command_platform_runs_its_commands(tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.write_text("1.0.0")
    platform = CommandPlatform(
        version=f"cat {version}",
        install=f"cp {{image}} {tmp_path}/slot && echo {{version}} > {version}",
        reboot="true", confirm="true", rollback="true", factory_reset=f"rm -f {tmp_path}/slot",
    )  # fmt: skip
    image = tmp_path / "image with space.bin"
    image.write_bytes(b"new")
    platform.install(image, "2.0.0")
    assert platform.current_version() == "2.0.0"
    assert (tmp_path / "slot").read_bytes() == b"new"
    failing = CommandPlatform(version="exit 3", install="true", reboot="true", confirm="true",
                              rollback="true", factory_reset="true")  # fmt: skip
    with pytest.raises(RuntimeError, match="version command failed"):
        failing.current_version()


@pytest.mark.skipif(not Path("/usr/bin/env").exists(), reason="needs a POSIX system")
def test_the_agent_imports_without_the_back_end(tmp_path: Path) -> None:
    """device_agent and the contract import without the hub, back-end or CLI packages."""
    code = (
        "import sys, device_agent, patterns.contracts\n"
        "banned = [m for m in ('twin_manager', 'local_hub', 'twinfleet', 'azure.iot.hub',"
        " 'aiohttp', 'typer') if m in sys.modules]\n"
        "assert not banned, banned\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
