"""IoT Hub's throttles on the local hub: the documented table, token buckets with shaping, and
refusals through the real SDKs (429 with IoT Hub's error on REST, twin status 429 and CONNACK 3 on
MQTT). Time is a manual clock, so nothing here waits for real."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from azure.iot.device import IoTHubDeviceClient
from azure.iot.device import exceptions as device_errors
from azure.iot.hub import IoTHubJobManager, IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod, JobRequest, QuerySpecification, Twin
from msrest.exceptions import HttpOperationError

from local_hub import LocalHub, errors, quotas, tokens
from local_hub.rest import throttling


class ManualClock:
    """Seconds that move only when told (or when a shaped request sleeps, if `advancing`)."""

    def __init__(self, advancing: bool = False) -> None:
        self.now = 1000.0
        self.advancing = advancing
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.advancing:
            self.now += seconds


# -- the table --------------------------------------------------------------------------------


def test_rates_follow_the_documented_table() -> None:
    s1 = quotas.limits("S1", 1)
    assert s1["identityRegistryOperations"] * 60 == pytest.approx(100)
    assert s1["queries"] * 60 == pytest.approx(20)
    assert (s1["twinReads"], s1["twinUpdates"], s1["jobsDeviceOperations"]) == (100, 50, 10)
    assert (s1["newDeviceConnections"], s1["deviceToCloudSends"]) == (100, 100)
    assert s1["directMethods"] == 40  # 160 KB/sec in 4 KB meters
    assert quotas.limits("S1", 9)["newDeviceConnections"] == 108  # higher of 100 or 12/unit
    s2 = quotas.limits("S2", 20)
    assert (s2["twinReads"], s2["twinUpdates"], s2["jobsDeviceOperations"]) == (200, 100, 20)
    assert s2["directMethods"] == 20 * 120
    s3 = quotas.limits("S3", 2)
    assert s3["queries"] * 60 == pytest.approx(2000)
    assert (s3["twinReads"], s3["twinUpdates"], s3["newDeviceConnections"]) == (1000, 500, 12000)
    assert s3["identityRegistryOperations"] * 60 == pytest.approx(10000)
    assert quotas.limits("F1", 1) == s1
    assert [quotas.max_active_jobs(t) for t in ("F1", "S1", "S2", "S3")] == [1, 1, 5, 10]


@pytest.mark.parametrize(("tier", "units"), [("B1", 1), ("F1", 2), ("S3", 11), ("S1", 0)])
def test_unknown_tiers_and_unit_counts_are_refused(tier: str, units: int) -> None:
    with pytest.raises(ValueError, match=tier if tier == "B1" else "units"):
        quotas.Quotas(tier, units)


@pytest.mark.parametrize(
    ("method", "path", "throttle"),
    [
        ("POST", "/devices/query", "queries"),
        ("POST", "/devices", "identityRegistryOperations"),
        ("GET", "/devices", "identityRegistryOperations"),
        ("DELETE", "/devices/d1", "identityRegistryOperations"),
        ("GET", "/twins/d1", "twinReads"),
        ("PATCH", "/twins/d1", "twinUpdates"),
        ("PUT", "/twins/d1", "twinUpdates"),
        ("POST", "/twins/d1/methods", "directMethods"),
        ("PUT", "/jobs/v2/j1", "jobsOperations"),
        ("GET", "/jobs/v2/query", "jobsOperations"),
        ("POST", "/configurations/testQueries", "configurations"),
        ("GET", "/statistics/devices", None),
        ("GET", "/quotas", None),
        ("GET", "/artifacts/fw.bin", None),
    ],
)
def test_each_request_draws_on_its_throttle(method: str, path: str, throttle: str | None) -> None:
    assert throttling.throttle_of(method, path) == throttle


# -- buckets and shaping ----------------------------------------------------------------------


def test_a_minute_of_burst_then_shaping_then_refusal() -> None:
    clock = ManualClock()
    limits = quotas.Quotas("S1", 1, clock=clock, sleep=clock.sleep)

    async def burst(count: int) -> list[BaseException | None]:
        async def one() -> None:
            await limits.admit("queries")

        return await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)

    outcomes = asyncio.run(burst(30))
    # 20 banked (one minute of 20/min) at once; the shaping queue holds 10 s, i.e. 3 more
    # requests (3, 6 and 9 s late); the rest are refused and take nothing.
    assert outcomes[:23] == [None] * 23
    assert clock.slept == [3.0, 6.0, 9.0]
    refused = outcomes[23:]
    assert all(isinstance(r, errors.Throttled) for r in refused)
    first = refused[0]
    assert isinstance(first, errors.Throttled)
    assert first.retry_after == pytest.approx(2.0)  # 12 s to its token, 10 of which it may queue
    assert "queries" in first.message
    assert "20/min" in first.message
    view = limits.view()["throttles"]["queries"]
    assert (view["admitted"], view["shaped"], view["throttled"]) == (23, 3, 7)
    clock.now += 60  # a minute later: the queue is paid back and 17 more are banked
    assert limits.view()["throttles"]["queries"]["available"] == pytest.approx(17)


def test_a_sequential_client_that_waits_is_never_refused() -> None:
    clock = ManualClock(advancing=True)
    limits = quotas.Quotas("S1", 1, clock=clock, sleep=clock.sleep)

    async def run() -> None:
        for _ in range(100):
            await limits.admit("queries")

    asyncio.run(run())
    assert clock.now - 1000.0 == pytest.approx(80 * 3)  # 20 at once, then one per 3 s


def test_pacing_always_waits_and_never_refuses() -> None:
    clock = ManualClock()
    limits = quotas.Quotas("S1", 1, clock=clock, sleep=clock.sleep)

    async def run() -> None:
        for _ in range(605):
            await limits.pace("jobsDeviceOperations")

    asyncio.run(run())
    assert clock.slept == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])  # 600 banked, then 10/sec


# -- through the SDKs -------------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def s1_hub(make_hub: Callable[..., LocalHub], clock: ManualClock) -> LocalHub:
    """An S1 hub whose quotas run on a manual clock and refuse instead of queueing."""
    return make_hub(limits=quotas.Quotas("S1", 1, clock=clock, sleep=clock.sleep, shaping=0))


def _registry(hub: LocalHub) -> Any:
    manager = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    manager.protocol.config.retry_policy.retries = 0  # msrest would retry 429s by itself
    return manager


def test_queries_past_the_quota_get_iot_hubs_429(s1_hub: LocalHub, clock: ManualClock) -> None:
    registry = _registry(s1_hub)
    spec = QuerySpecification(query="SELECT * FROM devices")
    for _ in range(20):
        registry.query_iot_hub(spec)
    with pytest.raises(HttpOperationError) as refused:
        registry.query_iot_hub(spec)
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["iothub-errorcode"] == "ThrottlingException"
    assert int(response.headers["Retry-After"]) == 3
    body = response.json()
    assert body["Message"].startswith("ErrorCode:ThrottlingException;")
    detail = json.loads(body["Message"].partition(";")[2])
    assert detail["errorCode"] == 429001
    clock.now += 3
    registry.query_iot_hub(spec)  # paid back
    token = tokens.make_sas_token(
        s1_hub.service_connection_string.split(";")[0].split("=", 1)[1],
        s1_hub.server.owner_keys[0],
        int(time.time()) + 60,
    )
    shown = requests.get(
        f"https://{s1_hub.host}:{s1_hub.service_port}/quotas",
        headers={"Authorization": f"{token}&skn=iothubowner"},
        params={"api-version": "2021-04-12"},
        verify=s1_hub.ca_certificate_path,
        timeout=30,
    )
    assert shown.status_code == 200
    used = shown.json()
    assert used == s1_hub.quotas
    assert (used["tier"], used["units"]) == ("S1", 1)
    assert (
        used["throttles"]["queries"]["admitted"],
        used["throttles"]["queries"]["throttled"],
    ) == (
        21,
        1,
    )
    assert used["throttles"]["twinReads"]["admitted"] == 0


def test_registry_twins_methods_and_bulk_draw_on_their_own_quotas(
    s1_hub: LocalHub, clock: ManualClock
) -> None:
    registry = _registry(s1_hub)
    registry.create_device_with_sas("quota-1", None, None, "enabled")
    for _ in range(98):
        registry.get_device("quota-1")
    # A bulk call costs one per device (an empty list, refused by the hub itself, costs one).
    assert registry.bulk_create_or_update_devices([]).is_successful is False
    with pytest.raises(HttpOperationError) as refused:
        registry.get_device("quota-1")
    assert refused.value.response.status_code == 429
    registry.get_twin("quota-1")  # twin reads are their own quota
    registry.update_twin("quota-1", Twin(tags={"a": 1}), "*")
    clock.now += 60
    registry.get_device("quota-1")


def test_second_job_on_s1_is_refused(s1_hub: LocalHub) -> None:
    _registry(s1_hub).create_device_with_sas("job-1", None, None, "enabled")
    jobs = IoTHubJobManager.from_connection_string(s1_hub.service_connection_string)
    jobs.protocol.config.connection.verify = s1_hub.ca_certificate_path
    jobs.protocol.config.retry_policy.retries = 0

    def request(job_id: str) -> JobRequest:
        return JobRequest(
            job_id=job_id, type="scheduleDeviceMethod", query_condition="*",
            cloud_to_device_method=CloudToDeviceMethod(method_name="m"),
            start_time=datetime.now(UTC).isoformat(), max_execution_time_in_seconds=600,
        )  # fmt: skip

    jobs.create_scheduled_job("first", request("first"))  # waits for its offline device
    with pytest.raises(HttpOperationError) as refused:
        jobs.create_scheduled_job("second", request("second"))
    assert refused.value.response.status_code == 429
    assert (
        refused.value.response.headers["iothub-errorcode"] == "ThrottlingMaxActiveJobCountExceeded"
    )
    jobs.cancel_scheduled_job("first")
    jobs.create_scheduled_job("second", request("second"))
    jobs.cancel_scheduled_job("second")


def test_mqtt_twin_requests_past_the_quota_get_status_429(
    make_hub: Callable[..., LocalHub], clock: ManualClock
) -> None:
    # A burst of 0.05 s: 5 twin reads, 2 twin updates and 5 new connections banked.
    hub = make_hub(limits=quotas.Quotas("S1", 1, clock=clock, sleep=clock.sleep, shaping=0,
                                        burst=0.05))  # fmt: skip
    key = base64.b64encode(os.urandom(32)).decode()
    _registry(hub).create_device_with_sas("mqtt-1", key, None, "enabled")
    client = IoTHubDeviceClient.create_from_connection_string(
        hub.device_connection_string("mqtt-1", key), server_verification_cert=hub.ca_certificate
    )
    try:
        client.connect()
        for _ in range(5):
            client.get_twin()
        with pytest.raises(device_errors.ClientError) as refused:
            client.get_twin()
        assert "status 429" in str(refused.value.__cause__)
        client.patch_twin_reported_properties({"a": 1})
        client.patch_twin_reported_properties({"a": 2})
        with pytest.raises(device_errors.ClientError) as refused:
            client.patch_twin_reported_properties({"a": 3})
        assert "status 429" in str(refused.value.__cause__)
        clock.now += 1
        client.patch_twin_reported_properties({"a": 4})
        assert client.get_twin()["reported"]["a"] == 4
        # Direct methods are metered in 4 KB of payload: two meters are banked at this burst.
        registry = _registry(hub)
        big = CloudToDeviceMethod(method_name="m", payload="x" * 5000)  # two meters
        with pytest.raises(HttpOperationError) as not_listening:
            registry.invoke_device_method("mqtt-1", big)
        assert not_listening.value.response.status_code == 404
        with pytest.raises(HttpOperationError) as refused_method:
            registry.invoke_device_method("mqtt-1", big)
        assert refused_method.value.response.status_code == 429
    finally:
        client.shutdown()
    assert hub.quotas["throttles"]["twinUpdates"]["throttled"] == 1


# A refused CONNACK leaves the device SDK's failed connect future and paho's wake-up socketpair
# for the garbage collector ("unraisable"): the SDK's noise, not the hub's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_new_connections_past_the_quota_get_connack_3(
    make_hub: Callable[..., LocalHub], clock: ManualClock
) -> None:
    hub = make_hub(limits=quotas.Quotas("S1", 1, clock=clock, sleep=clock.sleep, shaping=0,
                                        burst=0.02))  # 2 new connections banked  # fmt: skip
    registry = _registry(hub)
    clients = []
    try:
        for n in range(4):
            key = base64.b64encode(os.urandom(32)).decode()
            clock.now += 1  # the registry's own quota (one banked at this burst) refills
            registry.create_device_with_sas(f"conn-{n}", key, None, "enabled")
            client = IoTHubDeviceClient.create_from_connection_string(
                hub.device_connection_string(f"conn-{n}", key),
                server_verification_cert=hub.ca_certificate,
                connection_retry=False,
            )
            clients.append(client)
        clients[0].connect()
        clients[1].connect()
        with pytest.raises(device_errors.ConnectionFailedError):
            clients[2].connect()
        clock.now += 1
        clients[3].connect()
    finally:
        for client in clients:
            client.shutdown()
    assert hub.quotas["throttles"]["newDeviceConnections"]["throttled"] == 1


def test_no_tier_means_no_quotas(hub: LocalHub) -> None:
    assert hub.quotas == {"tier": None, "units": None, "throttles": {}}
    registry = _registry(hub)
    for _ in range(30):
        registry.query_iot_hub(QuerySpecification(query="SELECT * FROM devices"))
