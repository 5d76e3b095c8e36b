"""Scheduled jobs: twin updates and direct methods over query conditions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient, MethodResponse
from azure.iot.hub import IoTHubJobManager
from azure.iot.hub.models import JobRequest, Twin, TwinProperties
from msrest.exceptions import HttpOperationError

import twin_manager
from local_hub import LocalHub
from twin_manager import TwinManager


def _devices(fleet: TwinManager, count: int, ring: str = "canary") -> list[str]:
    ids = [f"{ring}-{i:03d}" for i in range(count)]
    for device_id in ids:
        fleet.devices.create(device_id)
        fleet.twins.update_tags(device_id, {"ring": ring})
    return ids


def _answering(
    hub: LocalHub, fleet: TwinManager, device_id: str, status: int = 200
) -> IoTHubDeviceClient:
    client = IoTHubDeviceClient.create_from_connection_string(
        fleet.devices.connection_string(device_id), server_verification_cert=hub.ca_certificate
    )
    client.connect()
    client.on_method_request_received = lambda request: client.send_method_response(
        MethodResponse.create_from_method_request(request, status, {"device": device_id})
    )
    return client


def test_twin_update_job_reaches_every_target(fleet: TwinManager) -> None:
    canary = _devices(fleet, 5)
    others = _devices(fleet, 3, ring="main")
    job = fleet.jobs.schedule_twin_update(
        "tags.ring = 'canary'", desired={"fw": "2.0"}, tags={"wave": 1}
    )
    assert job.status in ("queued", "running")
    done = fleet.jobs.wait(job.job_id, timeout=20, poll=0.1)
    assert done.status == "completed"
    assert (done.statistics.device_count, done.statistics.succeeded_count) == (5, 5)
    assert all(fleet.twins.get(d).desired["fw"] == "2.0" for d in canary)
    assert all("fw" not in fleet.twins.get(d).desired for d in others)
    results = fleet.jobs.results(job.job_id)
    assert sorted(r.device_id for r in results) == canary
    assert {r.status for r in results} == {"completed"}


def test_method_job_with_an_offline_device(hub: LocalHub, fleet: TwinManager) -> None:
    online, offline = _devices(fleet, 2)
    client = _answering(hub, fleet, online)
    try:
        job = fleet.jobs.schedule_method(
            "tags.ring = 'canary'", "reboot", {"delay": 0}, timeout=5, max_execution=3
        )
        done = fleet.jobs.wait(job.job_id, timeout=20, poll=0.2)
    finally:
        client.shutdown()
    # As on IoT Hub: the device that never came fails alone; the job itself ran, so completed.
    assert done.status == "completed"
    assert (done.statistics.failed_count, done.statistics.succeeded_count) == (1, 1)
    results = {r.device_id: r for r in fleet.jobs.results(job.job_id)}
    assert results[online].status == "completed"
    assert results[online].method_result == twin_manager.MethodResult(
        status=200, payload={"device": online}
    )
    assert results[offline].status == "failed"


def test_method_job_waits_for_a_device_that_comes_online(hub: LocalHub, fleet: TwinManager) -> None:
    (late,) = _devices(fleet, 1)
    clients: list[IoTHubDeviceClient] = []
    timer = threading.Timer(1.0, lambda: clients.append(_answering(hub, fleet, late)))
    timer.start()
    try:
        job = fleet.jobs.schedule_method(
            "tags.ring = 'canary'", "ping", None, timeout=5, max_execution=30
        )
        done = fleet.jobs.wait(job.job_id, timeout=30, poll=0.2)
    finally:
        timer.join()
        for client in clients:
            client.shutdown()
    assert done.status == "completed"
    assert done.statistics.succeeded_count == 1


def test_scheduled_job_waits_for_its_start_and_can_be_cancelled(fleet: TwinManager) -> None:
    _devices(fleet, 2)
    later = datetime.now(UTC) + timedelta(hours=1)
    job = fleet.jobs.schedule_twin_update("tags.ring = 'canary'", desired={"x": 1}, start=later)
    assert job.status == "scheduled"
    assert [j.job_id for j in fleet.jobs.list(status="scheduled")] == [job.job_id]
    cancelled = fleet.jobs.cancel(job.job_id)
    assert cancelled.status == "cancelled"
    assert fleet.twins.get("canary-000").desired == {}
    assert fleet.jobs.list(job_type="scheduleUpdateTwin")[0].status == "cancelled"


def test_cancel_during_a_run_stops_new_work(hub: LocalHub, fleet: TwinManager) -> None:
    _devices(fleet, 3)  # all offline: the method job waits on them
    job = fleet.jobs.schedule_method("tags.ring = 'canary'", "ping", None, max_execution=60)
    assert fleet.jobs.get(job.job_id).status in ("queued", "running")
    assert fleet.jobs.cancel(job.job_id).status == "cancelled"
    results = fleet.jobs.results(job.job_id)
    assert {r.status for r in results} <= {"canceled"}


def test_bad_job_requests_are_400_and_store_nothing(hub: LocalHub) -> None:
    manager = IoTHubJobManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    now = datetime.now(UTC)

    def request(job_id: str, kind: str, condition: str = "tags.x = 1", **extra: Any) -> JobRequest:
        return JobRequest(
            job_id=job_id, type=kind, query_condition=condition, start_time=now,
            max_execution_time_in_seconds=60, **extra,
        )  # fmt: skip

    bad = [
        request("b1", "scheduleUpdateTwin", "tags.x = ", update_twin=Twin(tags={"a": 1})),
        request("b2", "exportDevices"),
        request("b3", "scheduleDeviceMethod"),
        request(
            "b4",
            "scheduleUpdateTwin",
            update_twin=Twin(properties=TwinProperties(desired={"a.b": 1})),
        ),
    ]
    for refused in bad:
        with pytest.raises(HttpOperationError) as caught:
            manager.create_scheduled_job(refused.job_id, refused)
        assert caught.value.response.status_code == 400, refused.job_id
    good = request("g1", "scheduleUpdateTwin", update_twin=Twin(tags={"a": 1}))
    assert manager.create_scheduled_job("g1", good).job_id == "g1"
    with pytest.raises(HttpOperationError) as caught:
        manager.create_scheduled_job("g1", good)
    assert caught.value.response.status_code == 409
    assert [j["jobId"] for j in manager.query_scheduled_jobs(None, None).items] == ["g1"]
