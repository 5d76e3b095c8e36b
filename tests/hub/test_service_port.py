"""The Python SDKs on IoT Hub's own HTTPS port, 443, and on a custom port.

On 443 the hub's service HostName is the bare address (what every language's SDK assumes), and a
connection string that spells the default port out (`HostName=<address>:443`) works as well: the
Python service SDK then signs `sr=<address>%3A443`. On any other port HostName carries the port.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties

from local_hub import ports


@pytest.mark.parametrize("service_port", [443, 0], ids=["https-port", "custom-port"])
def test_both_sdks_reach_the_hub(make_hub: Any, loopback: str, service_port: int) -> None:
    if service_port == 443 and not ports.can_listen(loopback, 443):
        pytest.skip("this process may not listen on port 443")
    hub = make_hub(host=loopback, service_port=service_port)
    key = hub.service_connection_string.rsplit("SharedAccessKey=", 1)[1]
    host_names = [f"{hub.host}:{hub.service_port}"]
    if service_port == 443:
        host_names.insert(0, hub.host)
    assert hub.service_connection_string.startswith(f"HostName={host_names[0]};")
    for n, host_name in enumerate(host_names):
        manager = IoTHubRegistryManager.from_connection_string(
            f"HostName={host_name};SharedAccessKeyName=iothubowner;SharedAccessKey={key}"
        )
        manager.protocol.config.connection.verify = hub.ca_certificate_path
        device_key = base64.b64encode(os.urandom(32)).decode()
        device_id = f"port-{n}"
        manager.create_device_with_sas(device_id, device_key, None, "enabled")
        manager.update_twin(device_id, Twin(properties=TwinProperties(desired={"n": n})), "*")
        client = IoTHubDeviceClient.create_from_connection_string(
            hub.device_connection_string(device_id, device_key),
            server_verification_cert=hub.ca_certificate,
        )
        try:
            client.connect()
            assert client.get_twin()["desired"] == {"n": n, "$version": 2}
            client.patch_twin_reported_properties({"seen": n})
        finally:
            client.shutdown()
        assert manager.get_twin(device_id).properties.reported["seen"] == n
        del manager
