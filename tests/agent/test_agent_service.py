"""`twinfleet-agent` as systemd runs it: a real process (`python -m device_agent --config ...`)
against a real hub, a fake service manager on a real Unix datagram socket (`$NOTIFY_SOCKET`),
and a device whose platform is shell commands acting on files."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_hub import LocalHub
from twin_manager import TwinManager


class FakeSystemd:
    """The service manager's end of `$NOTIFY_SOCKET`: records every notification it receives."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.socket.settimeout(0.1)
        self.messages: list[dict[str, str]] = []

    def receive(self) -> None:
        while True:
            try:
                data = self.socket.recv(4096)
            except TimeoutError:
                return
            self.messages.append(dict(line.split("=", 1) for line in data.decode().split("\n")))

    def wait_for(self, key: str, contains: str = "", timeout: float = 30) -> int:
        """Wait for a message setting `key` (to a value containing `contains`); its index."""
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self.messages):
                if contains in message.get(key, "\0"):
                    return index
            assert time.monotonic() < deadline, f"no {key}={contains}... in {self.messages}"
            self.receive()

    def count(self, key: str) -> int:
        self.receive()
        return sum(key in message for message in self.messages)

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeSystemd]:
    manager = FakeSystemd(f"@twinfleet-test-{os.getpid()}-{request.node.name}")
    yield manager
    manager.close()


class AgentProcess:
    """`python -m device_agent --config FILE` with its stderr in a file."""

    def __init__(self, config: Path, log: Path, **environ: str) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "device_agent", "--config", str(config)],
                stdout=subprocess.DEVNULL, stderr=out, env={**os.environ, **environ},
            )  # fmt: skip

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def text(self) -> str:
        return self.log.read_text()


def test_the_agent_tells_systemd_it_is_ready_connected_and_alive(
    hub: LocalHub, fleet: TwinManager, agent_settings: Any, systemd: FakeSystemd,
    tmp_path: Path, eventually: Any,
) -> None:  # fmt: skip
    config = agent_settings("notified", log_level="debug")
    agent = AgentProcess(
        config, tmp_path / "agent.log", NOTIFY_SOCKET=systemd.address, WATCHDOG_USEC="200000"
    )
    try:
        ready = systemd.wait_for("READY", "1")
        connected = systemd.wait_for("STATUS", "connected as notified")
        assert ready < connected
        eventually(lambda: fleet.twins.get("notified").reported.get("firmware"))
        pings = systemd.count("WATCHDOG")
        eventually(lambda: systemd.count("WATCHDOG") >= pings + 3, timeout=10)
    finally:
        code = agent.stop()
    assert code == 0, agent.text()[-2000:]
    systemd.wait_for("STOPPING", "1")
    log = agent.text()
    key = (config.parent / "device.key").read_text().strip()
    assert key not in log
    assert "device_agent.serving: connected to the hub as notified" in log
    # One line per event: every line starts with a time stamp, none is a traceback's tail.
    assert all(line[:4].isdigit() for line in log.splitlines()), log[:2000]


def test_a_real_device_reboots_and_confirms_through_its_commands(
    hub: LocalHub, fleet: TwinManager, agent_settings: Any, systemd: FakeSystemd,
    upload: Any, tmp_path: Path, eventually: Any,
) -> None:  # fmt: skip
    hardware = tmp_path / "hardware"
    hardware.mkdir()
    (hardware / "version").write_text("1.0.0")
    (hardware / "boot-id").write_text("boot-1\n")
    platform = {
        "kind": "command",
        "version": f"cat {hardware}/version",
        "install": f"cp {{image}} {hardware}/slot && printf %s {{version}} > {hardware}/pending",
        "reboot": f"touch {hardware}/reboot-requested",
        "confirm_boot": f"touch {hardware}/confirmed",
        "rollback": f"rm -f {hardware}/pending",
        "factory_reset": f"touch {hardware}/reset",
        "boot_id": f"cat {hardware}/boot-id",
    }
    config = agent_settings("hardware", platform=platform)
    log = tmp_path / "agent.log"

    def firmware() -> dict[str, Any]:
        reported: dict[str, Any] = fleet.twins.get("hardware").reported.get("firmware", {})
        return reported

    agent = AgentProcess(config, log, NOTIFY_SOCKET=systemd.address)
    try:
        eventually(lambda: firmware().get("currentFwVersion") == "1.0.0")
        image = b"new firmware " * 5000
        fleet.twins.update_desired("hardware", {"firmware": {"fwVersion": "1.1.0",
                                                       **upload("hw.bin", image)}})  # fmt: skip
        eventually(lambda: (hardware / "reboot-requested").exists(), timeout=60)
        systemd.wait_for("STATUS", "waiting for the device to reboot")
        eventually(lambda: firmware().get("fwUpdateStatus") == "rebooting")
        assert agent.process.poll() is None  # waiting for the shutdown, not restarting itself
        assert not (hardware / "confirmed").exists()
    finally:
        assert agent.stop() == 0, log.read_text()[-2000:]
    # Restarted within the same boot (`systemctl restart`): the reboot is still owed.
    (hardware / "reboot-requested").unlink()
    agent = AgentProcess(config, log)
    try:
        eventually(lambda: (hardware / "reboot-requested").exists())
        assert "reboot requested during this boot has not happened" in log.read_text()
        assert firmware().get("fwUpdateStatus") == "rebooting"  # not a false "rolledback"
    finally:
        assert agent.stop() == 0, log.read_text()[-2000:]
    # The device reboots: the bootloader runs the new slot on trial.
    assert (hardware / "slot").read_bytes() == image
    shutil.move(hardware / "pending", hardware / "version")
    (hardware / "boot-id").write_text("boot-2\n")
    (hardware / "reboot-requested").unlink()
    agent = AgentProcess(config, log, NOTIFY_SOCKET=systemd.address)
    try:
        eventually(
            lambda: (
                firmware().get("currentFwVersion") == "1.1.0"
                and firmware().get("fwUpdateStatus") == "current"
            ),
            timeout=60,
        )
        assert (hardware / "confirmed").exists()
        answer = fleet.methods.invoke("hardware", "reboot", {"delay": 0}, timeout=10)
        assert answer.status == 200
        eventually(lambda: (hardware / "reboot-requested").exists())
        eventually(lambda: fleet.twins.get("hardware").reported.get("reboot", {}).get("lastReboot"))
        assert agent.process.poll() is None
    finally:
        assert agent.stop() == 0, log.read_text()[-2000:]


class StallingImageServer:
    """Serves one image over HTTP; the first download stalls halfway until `release()`."""

    def __init__(self, image: bytes) -> None:
        import http.server
        import threading

        self.image = image
        self.stalled = threading.Event()
        self._release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.image)))
                self.end_headers()
                half = len(outer.image) // 2
                self.wfile.write(outer.image[:half])
                self.wfile.flush()
                if not outer.stalled.is_set():
                    outer.stalled.set()
                    outer._release.wait(60)
                try:
                    self.wfile.write(outer.image[half:])
                except OSError:
                    pass  # the client is gone

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/image.bin"

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


def test_a_stop_during_a_download_exits_at_once_and_the_next_start_finishes_the_update(
    fleet: TwinManager, agent_settings: Any, tmp_path: Path, eventually: Any
) -> None:
    """Stopping must not wait for the download thread (which would go on to install and reboot
    during the stop): the agent leaves at once, and the next start carries the update through."""
    import hashlib

    image = os.urandom(2 * 1024 * 1024)
    server = StallingImageServer(image)
    config = agent_settings("stopped-midway")
    log = tmp_path / "agent.log"
    try:
        agent = AgentProcess(config, log)
        eventually(lambda: fleet.twins.get("stopped-midway").reported.get("firmware"))
        fleet.twins.update_desired("stopped-midway", {"firmware": {
            "fwVersion": "2.0.0", "fwPackageURI": server.url,
            "fwPackageCheckValue": hashlib.sha256(image).hexdigest(),
        }})  # fmt: skip
        assert server.stalled.wait(30)
        agent.process.send_signal(signal.SIGTERM)
        # Within the download's own 30 s read timeout: nothing waited for the stalled thread.
        assert agent.process.wait(timeout=15) == 0, log.read_text()[-2000:]
        state = (config.parent / "state" / "agent" / "firmware.json").read_text()
        assert '"state": "downloading"' in state
        server.release()
        agent = AgentProcess(config, log)
        try:
            eventually(
                lambda: (f := fleet.twins.get("stopped-midway").reported["firmware"]).get(
                    "currentFwVersion"
                ) == "2.0.0" and f.get("fwUpdateStatus") == "current",
                timeout=60,
            )  # fmt: skip
        finally:
            assert agent.stop() == 0
    finally:
        server.close()


def test_a_stop_while_the_hub_is_unreachable_ends_the_retries(
    loopback: str, systemd: FakeSystemd, tmp_path: Path, eventually: Any
) -> None:
    key = tmp_path / "device.key"
    key.write_text("c2VjcmV0LWRldmljZS1rZXktZm9yLXRlc3RzLW9ubHk=")
    key.chmod(0o600)
    config = tmp_path / "agent.toml"
    config.write_text(
        'state_dir = "state"\n[connection]\nkey_file = "device.key"\ndevice_id = "lost"\n'
        f'hub_host = "hub.example"\ngateway_host = "{loopback}"\n[platform]\nkind = "simulated"\n'
    )
    agent = AgentProcess(config, tmp_path / "agent.log", NOTIFY_SOCKET=systemd.address)
    try:
        systemd.wait_for("READY", "1")  # started, though not connected: systemctl start returns
        eventually(lambda: "connecting failed" in agent.text())
    finally:
        code = agent.stop()
    assert code == 0, agent.text()[-2000:]
    assert "connected to the hub" not in agent.text()


ROOT = Path(__file__).resolve().parents[2]


def test_the_unit_file_runs_the_agent_command_under_a_watchdog(tmp_path: Path) -> None:
    import configparser

    from device_agent import units

    text = (ROOT / "packaging" / "twinfleet-agent.service").read_text()
    assert text == units.render("/opt/twinfleet/bin/twinfleet-agent", "/etc/twinfleet/agent.toml")
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "always"
    assert int(service["WatchdogSec"]) > 0
    assert service["RestartPreventExitStatus"] == "2"  # a bad settings file: no restart loop
    # What the command prints for this install, checked by systemd's own verifier.
    config = tmp_path / "agent.toml"
    printed = subprocess.run(
        [sys.executable, "-m", "device_agent", "--systemd-unit", "--config", str(config)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    installed = Path(sys.executable).parent / "twinfleet-agent"
    assert f"ExecStart={installed} --config {config}\n" in printed
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit's syntax is not checked")
    copy = tmp_path / "twinfleet-agent.service"
    copy.write_text(printed)
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
