"""TwinManager end to end: every public call against the local hub, every error for real."""

from __future__ import annotations

import base64
import concurrent.futures
import logging
import socket
import threading
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient, MethodResponse

import twin_manager
from local_hub import LocalHub, testing
from twin_manager import RetryPolicy, TwinManager


def _connect(hub: LocalHub, fleet: TwinManager, device_id: str) -> IoTHubDeviceClient:
    client = IoTHubDeviceClient.create_from_connection_string(
        fleet.devices.connection_string(device_id), server_verification_cert=hub.ca_certificate
    )
    client.connect()
    return client


def test_device_lifecycle(fleet: TwinManager) -> None:
    device = fleet.devices.create("tm-1")
    assert device.status == "enabled"
    assert device.primary_key
    assert device.secondary_key
    assert device.primary_key not in repr(device)
    with pytest.raises(twin_manager.Conflict):
        fleet.devices.create("tm-1")
    assert fleet.devices.set_enabled("tm-1", False).status == "disabled"
    assert fleet.devices.get("tm-1").status == "disabled"
    assert [d.device_id for d in fleet.devices.list()] == ["tm-1"]
    fleet.devices.delete("tm-1")
    with pytest.raises(twin_manager.DeviceNotFound) as caught:
        fleet.devices.get("tm-1")
    assert caught.value.status == 404
    assert caught.value.device_id == "tm-1"


def test_twins_desired_tags_etags_and_replace(hub: LocalHub, fleet: TwinManager) -> None:
    fleet.devices.create("tw-1")
    twin = fleet.twins.update_desired("tw-1", {"configuration": {"version": 1, "interval": 30}})
    assert twin.desired == {"configuration": {"version": 1, "interval": 30}}
    assert twin.desired_version == 2
    fleet.twins.update_tags("tw-1", {"ring": "canary"}, if_match=twin.etag)
    with pytest.raises(twin_manager.PreconditionFailed):
        fleet.twins.update_tags("tw-1", {"ring": "main"}, if_match=twin.etag)
    assert fleet.twins.get("tw-1").tags == {"ring": "canary"}
    removed = fleet.twins.update_desired("tw-1", {"configuration": {"interval": None}})
    assert removed.desired == {"configuration": {"version": 1}}
    replaced = fleet.twins.replace("tw-1", desired={"mode": "eco"}, tags={})
    assert (replaced.desired, replaced.tags) == ({"mode": "eco"}, {})
    client = _connect(hub, fleet, "tw-1")
    try:
        client.patch_twin_reported_properties({"mode": "eco"})
        twin = fleet.twins.get("tw-1")
        assert twin.reported == {"mode": "eco"}
        assert twin.connection_state == "Connected"
        assert "mode" in twin.reported_metadata
    finally:
        client.shutdown()


def test_update_desired_many_reports_each_outcome(fleet: TwinManager) -> None:
    for i in range(5):
        fleet.devices.create(f"many-{i}")
    results = fleet.twins.update_desired_many([*(f"many-{i}" for i in range(5)), "ghost"], {"x": 1})
    assert all(isinstance(results[f"many-{i}"], twin_manager.Twin) for i in range(5))
    assert isinstance(results["ghost"], twin_manager.DeviceNotFound)


def test_invoke_online_offline_and_timeout(hub: LocalHub, fleet: TwinManager) -> None:
    fleet.devices.create("m-1")
    with pytest.raises(twin_manager.DeviceNotOnline):
        fleet.methods.invoke("m-1", "reboot", {"delay": 0})
    with pytest.raises(twin_manager.DeviceNotFound):
        fleet.methods.invoke("nobody", "reboot")
    client = _connect(hub, fleet, "m-1")
    answer = threading.Event()

    def on_method(request: Any) -> None:
        if request.name == "reboot":
            client.send_method_response(
                MethodResponse.create_from_method_request(request, 200, {"at": "now"})
            )
        answer.set()

    try:
        client.on_method_request_received = on_method
        result = fleet.methods.invoke("m-1", "reboot", {"delay": 0}, timeout=10)
        assert result == twin_manager.MethodResult(status=200, payload={"at": "now"})
        with pytest.raises(twin_manager.MethodTimeout):
            fleet.methods.invoke("m-1", "ignored", timeout=5)
    finally:
        client.shutdown()


def test_query_pages_lazily_counts_and_groups(fleet: TwinManager) -> None:
    regions = ["eu", "us", "ap"]
    for first in range(0, 2000, 100):  # registered a hundred to a bulk request
        fleet.devices.bulk([
            {"id": f"p-{i:04d}", "importMode": "create", "tags": {"region": regions[i % 3]}}
            for i in range(first, first + 100)
        ])  # fmt: skip
    rows = fleet.queries.run("SELECT * FROM devices", page_size=500)
    first = next(rows)
    assert first["deviceId"].startswith("p-")
    assert 1 + sum(1 for _ in rows) == 2000
    assert fleet.queries.count() == 2000
    assert fleet.queries.count("tags.region = 'eu'") == 667
    assert fleet.queries.group_by("tags.region") == {"eu": 667, "us": 667, "ap": 666}
    twins = list(fleet.queries.twins("tags.region = 'ap'", page_size=1000))
    assert len(twins) == 666
    assert all(t.tags["region"] == "ap" for t in twins)


def test_bad_queries_fail_locally_before_any_request(hub: LocalHub) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    key = base64.b64encode(b"k" * 32).decode()
    offline = TwinManager.from_connection_string(
        f"HostName=127.0.0.1:{port};SharedAccessKeyName=iothubowner;SharedAccessKey={key}"
    )
    with pytest.raises(twin_manager.InvalidQuery) as caught:
        list(offline.queries.run("SELECT * FROM devices WHERE tags.x = "))
    assert (caught.value.line, caught.value.column) == (1, 38)
    with pytest.raises(twin_manager.InvalidQuery, match="only IS_DEFINED"):
        offline.queries.validate("SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')")
    with pytest.raises(twin_manager.InvalidQuery):
        offline.queries.count("tags.x ==")
    assert offline.queries.explain("select * from devices where a=1 or b=2 and c=3") == (
        "SELECT * FROM devices WHERE ((a = 1) OR ((b = 2) AND (c = 3)))"
    )


def test_wrong_key_is_unauthorized_and_never_shown(
    hub: LocalHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = base64.b64encode(b"w" * 32).decode()
    parts = dict(p.split("=", 1) for p in hub.service_connection_string.split(";"))
    connection_string = hub.service_connection_string.replace(parts["SharedAccessKey"], wrong)
    manager = TwinManager.from_connection_string(connection_string, ca_file=hub.ca_certificate_path)
    with pytest.raises(twin_manager.Unauthorized) as caught:
        manager.devices.list()
    for secret in (wrong, parts["SharedAccessKey"]):
        assert secret not in str(caught.value)
        assert secret not in caplog.text


def test_throttling_is_retried_then_raised(
    hub: LocalHub, faults: testing.Faults, fleet: TwinManager, sleeps: list[float]
) -> None:
    fleet.devices.create("t-1")
    faults.inject(429, 2, retry_after=2)
    assert fleet.twins.get("t-1").device_id == "t-1"
    assert sleeps == [2.0, 2.0]  # Retry-After is honoured over the shorter backoff
    sleeps.clear()
    faults.inject(503, 2)
    assert fleet.twins.get("t-1").device_id == "t-1"
    assert sleeps == [0.1, 0.2]  # capped exponential backoff, jitter fixed at 0.5
    sleeps.clear()
    faults.inject(429, 10, retry_after=1)  # a throttle does not spend an attempt
    assert fleet.twins.get("t-1").device_id == "t-1"
    # Each wait is the Retry-After or the (growing, capped, jittered) backoff if longer.
    assert sleeps == [1.0, 1.0, 1.0, 1.0, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0]
    sleeps.clear()
    stingy = TwinManager.from_local_hub(
        hub, retry=RetryPolicy(sleep=sleeps.append, jitter=lambda: 0.5, throttle_budget=3)
    )
    faults.inject(429, 10, retry_after=1)
    with pytest.raises(twin_manager.Throttled) as caught:
        stingy.twins.get("t-1")  # 3 s of waiting on throttles is all it may spend
    assert caught.value.retry_after == 1
    assert sleeps == [1.0, 1.0, 1.0]
    faults.inject(429, 0)


def test_not_transient_errors_are_not_retried(fleet: TwinManager, sleeps: list[float]) -> None:
    with pytest.raises(twin_manager.DeviceNotFound):
        fleet.twins.get("nobody")
    assert sleeps == []


def test_concurrent_use_from_threads(fleet: TwinManager) -> None:
    fleet.devices.create("c-1")

    def bump(i: int) -> int:
        return fleet.twins.update_desired("c-1", {f"k{i}": i}).desired_version

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(bump, range(40)))
    assert sorted(versions) == list(range(2, 42))
    assert len(fleet.twins.get("c-1").desired) == 40


def test_a_device_connection_string_from_the_service_one_connects(hub: LocalHub) -> None:
    fleet = TwinManager.from_connection_string(
        hub.service_connection_string, ca_file=hub.ca_certificate_path
    )
    fleet.devices.create("from-service-cs")
    text = fleet.devices.connection_string("from-service-cs")
    assert text.startswith(f"HostName={hub.host};DeviceId=from-service-cs;")
    client = IoTHubDeviceClient.create_from_connection_string(
        text, server_verification_cert=hub.ca_certificate, connection_retry=False
    )
    try:
        client.connect()
        client.patch_twin_reported_properties({"connected": "by address"})
    finally:
        client.shutdown()
    assert fleet.twins.get("from-service-cs").reported["connected"] == "by address"


def test_pages_hand_back_projection_rows_as_the_hub_sent_them(fleet: TwinManager) -> None:
    # A column named `version` holding text is not a Twin: the SDK's own decoder would refuse it.
    for i in range(3):
        fleet.devices.create(f"pv-{i}")
        fleet.twins.update_tags(f"pv-{i}", {"fw": f"2.0.{i}"})
    text = "SELECT deviceId, tags.fw AS version FROM devices"
    rows, token = fleet.queries.page(text, page_size=2)
    assert len(rows) == 2
    assert token is not None
    more, last = fleet.queries.page(text, token, page_size=2)
    assert last is None
    assert sorted(row["version"] for row in rows + more) == ["2.0.0", "2.0.1", "2.0.2"]
