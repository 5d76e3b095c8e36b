"""Jobs as IoT Hub runs them, through `IoTHubJobManager` as Microsoft's samples call it: `*` for
every device, and a job whose devices fail still ends `completed`, counting them."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.iot.hub import IoTHubConfigurationManager, IoTHubJobManager
from azure.iot.hub.models import (
    CloudToDeviceMethod,
    Configuration,
    ConfigurationContent,
    JobRequest,
    Twin,
    TwinProperties,
)
from msrest.exceptions import HttpOperationError

from local_hub import LocalHub
from twin_manager import TwinManager


@pytest.fixture
def jobs(hub: LocalHub) -> Any:
    manager = IoTHubJobManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    return manager


def _wait(jobs: Any, job_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while (job := jobs.get_scheduled_job(job_id)).status not in ("completed", "failed"):
        assert time.monotonic() < deadline, f"job still {job.status}"
        time.sleep(0.1)
    return job


def _request(kind: str, condition: str, **fields: Any) -> JobRequest:
    return JobRequest(
        job_id=f"job-{uuid.uuid4()}",
        type=kind,
        start_time=datetime.now(UTC).replace(tzinfo=None).isoformat(),  # as the samples send it
        query_condition=condition,
        **fields,
    )


def test_star_selects_every_device_for_a_twin_update(fleet: TwinManager, jobs: Any) -> None:
    for device_id in ("star-1", "star-2", "star-3"):
        fleet.devices.create(device_id)
    request = _request(
        "scheduleUpdateTwin", "*",
        update_twin=Twin(etag="*", properties=TwinProperties(desired={"temperature": 98.6})),
    )  # fmt: skip
    created = jobs.create_scheduled_job(request.job_id, request)
    assert created.query_condition == "*"
    done = _wait(jobs, request.job_id)
    assert done.status == "completed"
    stats = done.device_job_statistics
    assert (stats.device_count, stats.succeeded_count, stats.failed_count) == (3, 3, 0)
    assert {fleet.twins.get(d).desired["temperature"] for d in ("star-1", "star-2")} == {98.6}


@pytest.mark.parametrize("condition", ["**", "* OR tags.a = 1", "SELECT *"])
def test_star_is_accepted_only_alone(jobs: Any, condition: str) -> None:
    request = _request(
        "scheduleUpdateTwin", condition,
        update_twin=Twin(properties=TwinProperties(desired={"x": 1})),
    )  # fmt: skip
    with pytest.raises(HttpOperationError) as refused:
        jobs.create_scheduled_job(request.job_id, request)
    assert refused.value.response.status_code == 400


def test_method_job_with_an_offline_device_completes_and_counts_it(
    fleet: TwinManager, jobs: Any
) -> None:
    fleet.devices.create("never-online")
    request = _request(
        "scheduleDeviceMethod", "*",
        cloud_to_device_method=CloudToDeviceMethod(
            method_name="test_method", payload={"key": "value"},
            response_timeout_in_seconds=30, connect_timeout_in_seconds=1,
        ),
        max_execution_time_in_seconds=60,
    )  # fmt: skip
    jobs.create_scheduled_job(request.job_id, request)
    done = _wait(jobs, request.job_id)  # the 1 s connect timeout, not the job's 60 s
    assert (done.status, done.failure_reason) == ("completed", None)
    stats = done.device_job_statistics
    assert (stats.device_count, stats.failed_count, stats.succeeded_count) == (1, 1, 0)
    (row,) = fleet.jobs.results(request.job_id)
    assert (row.device_id, row.status) == ("never-online", "failed")
    assert row.error == {
        "code": "DeviceNotOnline",
        "description": "Timed out waiting for device to connect.",
    }


def test_job_that_runs_out_of_time_completes_with_devices_failed(
    fleet: TwinManager, jobs: Any
) -> None:
    fleet.devices.create("late")
    request = _request(
        "scheduleDeviceMethod", "deviceId = 'late'",
        cloud_to_device_method=CloudToDeviceMethod(method_name="ping", payload=None),
        max_execution_time_in_seconds=1,
    )  # fmt: skip
    jobs.create_scheduled_job(request.job_id, request)
    done = _wait(jobs, request.job_id)
    assert done.status == "completed"
    assert done.end_time is not None
    assert done.device_job_statistics.failed_count == 1


def test_job_times_are_in_the_order_iot_hub_gives_them(fleet: TwinManager, jobs: Any) -> None:
    """A start time already past when the job arrives (the SDK's "now", taken before the request
    left, here a minute earlier) is answered as the creation time: no job starts before it was
    created, and it ends after it started. A start time still ahead is kept as asked."""
    fleet.devices.create("timed")
    request = _request(
        "scheduleUpdateTwin", "deviceId = 'timed'",
        update_twin=Twin(etag="*", properties=TwinProperties(desired={"x": 1})),
    )  # fmt: skip
    request.start_time = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    created = jobs.create_scheduled_job(request.job_id, request)
    assert created.start_time == created.created_time
    done = _wait(jobs, request.job_id)
    assert done.created_time <= done.start_time <= done.end_time
    (row,) = fleet.jobs.results(request.job_id)
    assert row.start_time is not None
    assert row.end_time is not None
    assert done.created_time <= row.start_time <= row.end_time <= done.end_time

    later = datetime.now(UTC) + timedelta(hours=1)
    scheduled = _request(
        "scheduleUpdateTwin", "deviceId = 'timed'",
        update_twin=Twin(etag="*", properties=TwinProperties(desired={"x": 2})),
    )  # fmt: skip
    scheduled.start_time = later.isoformat()
    created = jobs.create_scheduled_job(scheduled.job_id, scheduled)
    assert created.status == "scheduled"
    assert created.created_time < created.start_time
    assert abs((created.start_time - later).total_seconds()) < 0.001
    jobs.cancel_scheduled_job(scheduled.job_id)


def test_configuration_without_a_target_condition_targets_no_device(
    hub: LocalHub, fleet: TwinManager
) -> None:
    fleet.devices.create("bystander")
    manager = IoTHubConfigurationManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    config = Configuration(
        id="no-target",
        content=ConfigurationContent(device_content={"properties.desired.chiller": {"t": 68}}),
    )
    created = manager.create_configuration(config)
    assert created.target_condition == ""
    assert manager.get_configuration("no-target").id == "no-target"
    assert "chiller" not in fleet.twins.get("bystander").desired
    manager.delete_configuration("no-target")
    assert manager.get_configurations() == []
