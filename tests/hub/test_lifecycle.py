"""LocalHub and `local_hub.serve`: hub.json, file modes, restart as the same hub, clean failure."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties

import local_hub
from local_hub import LocalHub, ports


def _manager(hub: LocalHub) -> Any:
    manager = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    return manager


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("service_port", [443, 0], ids=["https-port", "custom-port"])
def test_hub_json_says_how_to_reach_the_hub(
    make_hub: Any, tmp_path: Path, loopback: str, service_port: int
) -> None:
    if service_port == 443 and not ports.can_listen(loopback, 443):
        pytest.skip("this process may not listen on port 443")
    hub = make_hub(tmp_path / "named", host=loopback, name="lab", service_port=service_port)
    info_path = hub.data_dir / "hub.json"
    info = json.loads(info_path.read_text())
    assert info == hub.info
    assert info["serviceConnectionString"] == hub.service_connection_string
    # IoT Hub's port goes without saying, as every SDK but Python's needs; any other is spelt out.
    host_name = hub.host if service_port == 443 else f"{hub.host}:{hub.service_port}"
    assert hub.service_port != 0
    assert hub.service_connection_string.startswith(
        f"HostName={host_name};SharedAccessKeyName=iothubowner;SharedAccessKey="
    )
    assert (info["deviceHostName"], info["gatewayHostName"]) == ("lab.local", hub.host)
    assert info["serviceEndpoint"] == {"host": hub.host, "port": hub.service_port}
    assert info["deviceEndpoint"] == {"host": hub.host, "port": 8883}
    assert Path(info["caCertificatePath"]).read_text() == hub.ca_certificate
    assert Path(info["caBundlePath"]).read_text().endswith(hub.ca_certificate)
    assert hub.device_connection_string("d1", "a2V5") == (
        f"HostName=lab.local;DeviceId=d1;SharedAccessKey=a2V5;GatewayHostName={hub.host}"
    )
    assert _mode(hub.data_dir) == 0o700
    assert _mode(info_path) == 0o600
    assert _mode(hub.data_dir / "owner.key") == 0o600
    assert not list(hub.data_dir.glob(".*.tmp"))  # written atomically, nothing left behind
    hub.close()
    assert not info_path.exists()
    hub.close()  # closing twice is harmless


def test_restart_on_the_same_directory_is_the_same_hub(make_hub: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "same"
    hub = make_hub(data_dir)
    host, ca = hub.host, hub.ca_certificate
    key = hub.service_connection_string.rsplit("SharedAccessKey=", 1)[1]
    device = _manager(hub).create_device_with_sas("keep-1", None, None, "enabled")
    patch = Twin(tags={"ring": "canary"}, properties=TwinProperties(desired={"fw": "2.0"}))
    twin = _manager(hub).update_twin("keep-1", patch)
    hub.upload_artifact("fw.bin", b"image")
    url = hub.artifact_url("fw.bin", ttl=600)
    hub.close()

    again = make_hub(data_dir, host=host)
    assert again.ca_certificate == ca
    assert again.service_connection_string.rsplit("SharedAccessKey=", 1)[1] == key
    manager = _manager(again)
    kept = manager.get_device("keep-1")
    assert kept.authentication.symmetric_key.primary_key == (
        device.authentication.symmetric_key.primary_key
    )
    kept_twin = manager.get_twin("keep-1")
    assert (kept_twin.etag, kept_twin.version, kept_twin.tags) == (
        twin.etag,
        twin.version,
        twin.tags,
    )
    assert kept_twin.properties.desired == twin.properties.desired
    port = again.service_port
    signed_before = url.replace(url.split("/artifacts/")[0], f"https://{host}:{port}")
    with requests.Session() as session:
        assert session.get(signed_before, verify=again.ca_certificate_path).content == b"image"


def test_a_taken_address_fails_to_start_and_leaves_nothing_running(
    hub: LocalHub, tmp_path: Path
) -> None:
    before = set(threading.enumerate())
    with pytest.raises(OSError):  # port 8883 on this address is the first hub's
        LocalHub(tmp_path / "second", host=hub.host).start()
    assert set(threading.enumerate()) <= before
    assert not (tmp_path / "second" / "hub.json").exists()


def test_serve_runs_until_stopped(tmp_path: Path, loopback: str) -> None:
    data_dir = tmp_path / "served"

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            local_hub.serve(data_dir, host=loopback, service_port=0, name="svc", stop=stop)
        )
        info_path = data_dir / "hub.json"
        deadline = time.monotonic() + 20
        while not info_path.exists():
            assert time.monotonic() < deadline
            assert not task.done()
            await asyncio.sleep(0.02)
        info: dict[str, Any] = json.loads(info_path.read_text())
        response = await asyncio.to_thread(
            requests.get,
            f"https://{loopback}:{info['serviceEndpoint']['port']}/devices",
            verify=info["caCertificatePath"],
            timeout=10,
        )
        assert response.status_code == 401  # up, and guarding its API
        stop.set()
        await asyncio.wait_for(task, 15)
        return info

    info = asyncio.run(main())
    assert info["deviceHostName"] == "svc.local"
    assert not (data_dir / "hub.json").exists()
    key = base64.b64decode(json.loads((data_dir / "owner.key").read_text())["primaryKey"])
    assert len(key) == 32
