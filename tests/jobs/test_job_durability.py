"""A hub killed with SIGKILL in the middle of a 500-device job resumes it on restart, applying
nothing twice that it had recorded, and a job scheduled for later still runs after a restart."""

from __future__ import annotations

import concurrent.futures
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from twin_manager import RetryPolicy, TwinManager

DEVICES = 500


def _fleet(info: dict[str, Any]) -> TwinManager:
    return TwinManager.from_connection_string(
        info["serviceConnectionString"],
        ca_file=info["caCertificatePath"],
        retry=RetryPolicy(attempts=1),
    )


def test_kill_9_during_a_500_device_job(hub_process: Any) -> None:
    fleet = _fleet(hub_process.start())
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: fleet.devices.create(f"k-{i:03d}"), range(DEVICES)))
    job = fleet.jobs.schedule_twin_update("IS_DEFINED(deviceId)", desired={"fw": "2.0"})
    deadline = time.monotonic() + 30
    while True:  # kill once the job is under way
        statistics = fleet.jobs.get(job.job_id).statistics
        if statistics.device_count and statistics.succeeded_count > 0:
            break
        assert time.monotonic() < deadline, "the job never started"
    hub_process.kill()

    fleet = _fleet(hub_process.start())
    done = fleet.jobs.wait(job.job_id, timeout=60, poll=0.1)
    assert done.status == "completed"
    assert (done.statistics.device_count, done.statistics.succeeded_count) == (DEVICES, DEVICES)
    versions = {t.desired_version for t in fleet.queries.twins(page_size=1000)}
    assert versions == {2}, "some device got the patch twice"
    assert fleet.queries.count("properties.desired.fw = '2.0'") == DEVICES
    hub_process.terminate()


def test_a_scheduled_job_survives_a_restart(hub_process: Any) -> None:
    fleet = _fleet(hub_process.start())
    fleet.devices.create("later-1")
    start = datetime.now(UTC) + timedelta(seconds=3)
    job = fleet.jobs.schedule_twin_update("deviceId = 'later-1'", tags={"wave": 2}, start=start)
    assert job.status == "scheduled"
    hub_process.terminate()
    fleet = _fleet(hub_process.start())
    assert fleet.jobs.wait(job.job_id, timeout=30, poll=0.2).status == "completed"
    assert fleet.twins.get("later-1").tags == {"wave": 2}
    hub_process.terminate()
