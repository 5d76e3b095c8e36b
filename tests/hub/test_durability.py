"""A hub process killed with SIGKILL keeps everything it acknowledged, and restarts as the same
hub: same CA, same owner key, same devices and twins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from azure.iot.device import IoTHubDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties


def _manager(info: dict[str, Any]) -> Any:
    manager = IoTHubRegistryManager.from_connection_string(info["serviceConnectionString"])
    manager.protocol.config.connection.verify = info["caCertificatePath"]
    return manager


def test_acknowledged_writes_survive_kill_9(hub_process: Any) -> None:
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
