"""Microsoft's Node.js SDKs from npm against the local hub on port 443.

`azure-iot-device` 1.18 + `azure-iot-device-mqtt` 1.16 on the device side and `azure-iothub`
1.16 on the service side, unmodified, over real TLS. Each test's docstring records, as PROTOCOL
notes, where the Node.js SDK behaves differently on the wire from the Python SDKs that
shared/PROTOCOL.md describes.

Common to every service call (PROTOCOL): the Node.js service SDK takes `HostName` as a bare host
and always dials 443; its SAS token is `sr=<HostName>` *unencoded* (Python: `quote_plus`), signed
over that raw text, with `skn` and a one-hour expiry; it sends the same `api-version=2021-04-12`.
The device SDK dials `GatewayHostName` on 8883 and signs `sr=<HostName>/devices/<id>` like
Python's.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from azure.iot.device import IoTHubDeviceClient, MethodResponse
from azure.iot.hub.models import CloudToDeviceMethod, Twin

from local_hub import LocalHub


def _device(python_service: Any, hub: LocalHub, device_id: str) -> str:
    """Register a device with the Python SDK; returns its connection string."""
    key = base64.b64encode(os.urandom(32)).decode()
    python_service.create_device_with_sas(device_id, key, None, "enabled")
    return hub.device_connection_string(device_id, key)


def test_registry_create_get_update_delete(scenario: Any, python_service: Any) -> None:
    """PROTOCOL: `Registry.create` without keys sends `authentication.symmetricKey` with both
    keys as empty strings and `type: "sas"` (Python leaves them out): the hub generates both, as
    IoT Hub does. `Registry.update` PUTs the whole device as read back, with `If-Match: "*"`.
    `Registry.list` is `GET /devices/` with a trailing slash."""
    run = scenario("registry", deviceId="node-reg-1")
    run.finish()
    steps = run.by_step()
    created = steps["created"]["device"]
    assert created["deviceId"] == "node-reg-1"
    keys = created["authentication"]["symmetricKey"]
    assert len(keys["primaryKey"]) == len(keys["secondaryKey"]) == 44
    assert keys["primaryKey"] != keys["secondaryKey"]
    assert steps["got"]["device"]["etag"] == created["etag"]
    updated = steps["updated"]["device"]
    assert (updated["status"], updated["statusReason"]) == ("disabled", "maintenance")
    assert updated["etag"] != created["etag"]
    assert updated["authentication"]["symmetricKey"] == keys  # sent back unchanged
    assert "node-reg-1" in steps["listed"]["ids"]
    assert steps["gone"]["found"] is False
    assert (steps["gone"]["error"], steps["gone"]["status"]) == ("DeviceNotFoundError", 404)
    assert python_service.get_devices() == []


def test_twins_both_ways(scenario: Any, python_service: Any, node_hub: LocalHub) -> None:
    """PROTOCOL: adding a `properties.desired` listener on the device's twin fires it at once
    with the twin's whole current desired document (the SDK's own live object), then with each
    patch the hub pushes; Python's handler gets pushed patches only. The service `Twin.update`
    is a PATCH with the twin's etag quoted in `If-Match`, and copies the result into the twin."""
    connection_string = _device(python_service, node_hub, "node-twin-1")
    run = scenario("twins", deviceId="node-twin-1", device=connection_string)
    run.finish()
    steps = run.by_step()
    assert steps["device-got"]["desired"] == {"$version": 1}
    assert steps["device-got"]["reported"] == {"$version": 1}
    reported = steps["service-got"]["reported"]
    assert reported["firmware"] == {"currentFwVersion": "1.0.0"}
    assert reported["$version"] == 2
    assert steps["service-updated"]["tags"] == {"ring": "canary"}
    assert steps["service-updated"]["desired"]["interval"] == 30
    assert steps["service-updated"]["etag"] != steps["service-got"]["etag"]
    patches = steps["device-patches"]["patches"]
    assert {"interval": 30, "$version": 2} in patches
    assert all("$version" in patch for patch in patches)
    twin = python_service.get_twin("node-twin-1")
    assert twin.tags == {"ring": "canary"}
    assert twin.properties.desired["interval"] == 30
    assert twin.properties.reported["firmware"] == {"currentFwVersion": "1.0.0"}


def test_node_service_calls_a_python_device(
    scenario: Any, python_service: Any, node_hub: LocalHub
) -> None:
    """PROTOCOL: `Client.invokeDeviceMethod` is the same REST call as Python's
    (`POST /twins/{id}/methods`), always sending `responseTimeoutInSeconds` (default 30) and
    `connectTimeoutInSeconds` (default 0). The SDK reads IoT Hub's error code from the
    `ErrorCode:<code>;` prefix of the error body's `Message` (Python ignores the body): offline,
    the hub's 404 `DeviceNotOnline` becomes a plain `Error("Not found")` (only `DeviceNotFound`
    gets its own class), which the SDK's retry filter does not retry."""
    client = IoTHubDeviceClient.create_from_connection_string(
        _device(python_service, node_hub, "py-answers"),
        server_verification_cert=node_hub.ca_certificate,
    )
    calls = [
        {"methodName": "reboot", "payload": {"delay": 2}, "responseTimeoutInSeconds": 10},
        {"methodName": "unknown", "payload": None, "responseTimeoutInSeconds": 10},
    ]
    offline = scenario("invoke", deviceId="py-answers", calls=calls[:1])
    offline.finish()
    refused = offline.by_step()["reboot"]
    assert (refused["error"], refused["message"], refused["status"]) == ("Error", "Not found", 404)
    assert "ErrorCode:DeviceNotOnline;" in refused["body"]

    def on_method(request: Any) -> None:
        status = 200 if request.name == "reboot" else 404
        client.send_method_response(
            MethodResponse.create_from_method_request(request, status, {"got": request.payload})
        )

    try:
        client.connect()
        client.on_method_request_received = on_method
        online = scenario("invoke", deviceId="py-answers", calls=calls)
        online.finish()
    finally:
        client.shutdown()
    steps = online.by_step()
    assert steps["reboot"]["result"] == {"status": 200, "payload": {"got": {"delay": 2}}}
    assert steps["unknown"]["result"] == {"status": 404, "payload": {"got": None}}


def test_python_service_calls_a_node_device(
    scenario: Any, python_service: Any, node_hub: LocalHub
) -> None:
    """PROTOCOL: the Node device subscribes to `$iothub/methods/POST/#` at QoS 0 (Python: QoS
    1) and answers on `$iothub/methods/res/<status>/?$rid=<rid>` like Python. It subscribes
    when the handler is set on an open client, with no way to await the SUBACK; the script's
    `getTwin` after it is the barrier (the hub handles one connection's packets in order)."""
    device = scenario("device_method", device=_device(python_service, node_hub, "node-answers"))
    assert device.next_fact() == {"step": "ready"}
    reboot = python_service.invoke_device_method(
        "node-answers",
        CloudToDeviceMethod(
            method_name="reboot", payload={"delay": 3}, response_timeout_in_seconds=10
        ),
    )
    failed = python_service.invoke_device_method(
        "node-answers",
        CloudToDeviceMethod(method_name="fail", payload="now", response_timeout_in_seconds=10),
    )
    device.send("done")
    device.finish()
    assert (reboot.status, reboot.payload) == (200, {"rebooting": True, "delay": 3})
    assert (failed.status, failed.payload) == (500, {"reason": "asked to fail"})
    assert device.by_step()["requests"]["requests"] == [
        {"methodName": "reboot", "payload": {"delay": 3}},
        {"methodName": "fail", "payload": "now"},
    ]


def test_paged_query(scenario: Any, python_service: Any, node_hub: LocalHub) -> None:
    """PROTOCOL: `Registry.createQuery(sql, pageSize)` is Python's `POST /devices/query` with
    `x-ms-max-item-count`; `Query.nextAsTwin` follows `x-ms-continuation` until the hub leaves
    it out, and `hasMoreResults` turns false."""
    for n in range(5):
        python_service.create_device_with_sas(f"node-q-{n}", None, None, "enabled")
    run = scenario("query", sql="SELECT * FROM devices", pageSize=2)
    run.finish()
    steps = run.by_step()
    pages = steps["pages"]["pages"]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(twin["deviceId"] for page in pages for twin in page) == [
        f"node-q-{n}" for n in range(5)
    ]
    assert steps["pages"]["more"] is False
    assert steps["count"]["rows"] == [{"n": 5}]


def test_scheduled_twin_update_job(scenario: Any, python_service: Any) -> None:
    """PROTOCOL: `JobClient.scheduleTwinUpdate` is Python's `PUT /jobs/v2/{id}` with
    `type: "scheduleUpdateTwin"`, the patch as `updateTwin`, `startTime` as an ISO-8601 string
    with milliseconds and `maxExecutionTimeInSeconds`; `getJob` is `GET /jobs/v2/{id}`.
    `JobClient.createQuery(type, status, pageSize)` is `GET /jobs/v2/query?jobType=&jobStatus=`
    with the page size in `x-ms-max-item-count` (Python: query parameters only) and hands back
    the body as it comes: here the object `{"type", "items", "continuationToken"}` that the
    Python SDK's model needs, where Microsoft's Node.js samples iterate the result as an array.
    Which of the two IoT Hub itself sends is not settled here."""
    for n in range(3):
        python_service.create_device_with_sas(f"node-job-{n}", None, None, "enabled")
    run = scenario(
        "jobs",
        jobId="node-job",
        queryCondition="deviceId IN ['node-job-0', 'node-job-1']",
        patch={"etag": "*", "tags": {"wave": 1}, "properties": {"desired": {"mode": "eco"}}},
    )
    run.finish()
    steps = run.by_step()
    assert steps["scheduled"]["job"]["jobId"] == "node-job"
    assert steps["scheduled"]["job"]["type"] == "scheduleUpdateTwin"
    ended = steps["ended"]["job"]
    assert ended["status"] == "completed"
    assert ended["deviceJobStatistics"]["succeededCount"] == 2
    assert ended["deviceJobStatistics"]["failedCount"] == 0
    listed = steps["query"]["result"]
    assert [job["jobId"] for job in listed["items"]] == ["node-job"]
    assert steps["query"]["more"] is None
    for n, targeted in ((0, True), (1, True), (2, False)):
        twin = python_service.get_twin(f"node-job-{n}")
        assert (twin.tags == {"wave": 1}) is targeted
        assert (twin.properties.desired.get("mode") == "eco") is targeted


def test_configuration(scenario: Any, python_service: Any) -> None:
    """PROTOCOL: `Registry.addConfiguration` is `PUT /configurations/{id}` without `If-Match`;
    `updateConfiguration` PUTs the whole configuration as read back (system metrics, times)
    with its etag quoted in `If-Match`; `removeConfiguration` is a DELETE without `If-Match`."""
    python_service.create_device_with_sas("node-cfg-1", None, None, "enabled")
    python_service.create_device_with_sas("node-cfg-2", None, None, "enabled")
    python_service.update_twin("node-cfg-1", Twin(tags={"site": "lab"}), "*")
    run = scenario(
        "configurations",
        configurationId="node-settings",
        deviceId="node-cfg-1",
        targetCondition="tags.site = 'lab'",
    )
    run.finish()
    steps = run.by_step()
    added = steps["added"]["configuration"]
    assert (added["id"], added["priority"], added["targetCondition"]) == (
        "node-settings",
        10,
        "tags.site = 'lab'",
    )
    assert "node-settings" in steps["listed"]["ids"]
    updated = steps["updated"]["configuration"]
    assert (updated["priority"], updated["labels"]) == (20, {"owner": "node", "updated": "yes"})
    assert updated["etag"] != added["etag"]
    assert steps["applied"]["desired"]["settings"] == {"interval": 60}
    assert steps["removed"]["found"] is False
    assert steps["removed"]["status"] == 404
    assert "settings" not in python_service.get_twin("node-cfg-2").properties.desired
