"""A hub process killed with SIGKILL keeps everything it acknowledged, and restarts as the same
hub: same CA, same owner key, same devices and twins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties


class HubProcess:
    """`python -m twinfleet hub serve` in a child process."""

    def __init__(self, data_dir: Path, host: str) -> None:
        self.data_dir = data_dir
        self.host = host
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> dict[str, Any]:
        info_path = self.data_dir / "hub.json"
        info_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "twinfleet", "hub", "serve", "--data-dir", str(self.data_dir),
             "--host", self.host, "--service-port", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not info_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"hub did not start: {self.process.stderr}")
            time.sleep(0.05)
        info: dict[str, Any] = json.loads(info_path.read_text())
        return info

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        assert self.process.stderr is not None
        self.process.stderr.close()

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=15)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


@pytest.fixture
def hub_process(tmp_path: Path, loopback: str) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub", loopback)
    yield process
    if process.process is not None and process.process.poll() is None:
        process.kill()


def _manager(info: dict[str, Any]) -> Any:
    manager = IoTHubRegistryManager.from_connection_string(info["serviceConnectionString"])
    manager.protocol.config.connection.verify = info["caCertificatePath"]
    return manager


def test_acknowledged_writes_survive_kill_9(hub_process: HubProcess) -> None:
    info = hub_process.start()
    ca_before = Path(info["caCertificatePath"]).read_text()
    manager = _manager(info)
    device = manager.create_device_with_sas("durable-1", None, None, "enabled")
    key = device.authentication.symmetric_key.primary_key
    patch = Twin(tags={"ring": "canary"}, properties=TwinProperties(desired={"fw": "2.0"}))
    manager.update_twin("durable-1", patch)
    connection_string = (
        f"HostName={info['deviceHostName']};DeviceId=durable-1;SharedAccessKey={key};"
        f"GatewayHostName={info['gatewayHostName']}"
    )
    client = IoTHubDeviceClient.create_from_connection_string(
        connection_string, server_verification_cert=ca_before
    )
    try:
        client.connect()
        client.patch_twin_reported_properties({"fw": "2.0"})
    finally:
        client.shutdown()
    hub_process.kill()

    info = hub_process.start()
    assert Path(info["caCertificatePath"]).read_text() == ca_before
    twin = _manager(info).get_twin("durable-1")
    assert twin.tags == {"ring": "canary"}
    assert twin.properties.desired["fw"] == "2.0"
    assert twin.properties.reported["fw"] == "2.0"
    assert twin.connection_state == "Disconnected"
    client = IoTHubDeviceClient.create_from_connection_string(
        connection_string, server_verification_cert=ca_before
    )
    try:
        client.connect()
        assert client.get_twin()["desired"]["fw"] == "2.0"
    finally:
        client.shutdown()
    assert hub_process.terminate() == 0
    assert not (hub_process.data_dir / "hub.json").exists()
