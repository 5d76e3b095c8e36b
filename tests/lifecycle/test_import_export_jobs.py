"""IoT Hub's import and export jobs through the service SDK (`IoTHubJobManager`), with the
local hub's artifacts store as the blob containers: a round trip between two hubs, a devices
file with bad and hostile lines, and a hub stopped in the middle of an import."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from azure.iot.hub.models import JobProperties
from msrest.exceptions import HttpOperationError

from local_hub import LocalHub
from local_hub.quotas import Quotas
from twin_manager import TwinManager

DEVICES = 120


def _wait(jobs: Any, job_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = jobs.get_import_export_job(job_id)
        if job.status in ("completed", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(0.1)


def _blob(container_url: str, name: str, ca: str) -> bytes:
    """Read a blob through the container URL, as a Blob Storage client would."""
    base, _, query = container_url.partition("?")
    response = requests.get(f"{base}/{name}?{query}", verify=ca, timeout=30)
    response.raise_for_status()
    return response.content


def _put_blob(container_url: str, name: str, data: bytes, ca: str) -> None:
    base, _, query = container_url.partition("?")
    response = requests.put(
        f"{base}/{name}?{query}", data=data, headers={"x-ms-blob-type": "BlockBlob"},
        verify=ca, timeout=30,
    )  # fmt: skip
    response.raise_for_status()


def test_export_then_import_into_another_hub(
    make_hub: Callable[..., LocalHub], jobs_of: Callable[[LocalHub], Any]
) -> None:
    source, target = make_hub(), make_hub()
    with TwinManager.from_local_hub(source) as fleet:
        for i in range(DEVICES):
            fleet.devices.create(f"exp-{i:03d}", enabled=i % 10 != 0)
            if i % 3 == 0:
                fleet.twins.update(f"exp-{i:03d}", tags={"region": "eu", "n": i},
                                  desired={"interval": i})  # fmt: skip
        keys = {d.device_id: d.primary_key for d in fleet.devices.list()}
        out = fleet.artifact_store().container_url("backup", permissions="rw")
    source_jobs = jobs_of(source)
    created = source_jobs.create_import_export_job(
        JobProperties(type="export", output_blob_container_uri=out, exclude_keys_in_export=False)
    )
    assert created.status in ("enqueued", "running", "completed")
    done = _wait(source_jobs, created.job_id)
    assert (done.status, done.progress, done.failure_reason) == ("completed", 100, None)
    assert [j.job_id for j in source_jobs.get_import_export_jobs()] == [created.job_id]
    lines = [json.loads(line) for line in _blob(out, "devices.txt", source.ca_certificate_path)
             .decode().splitlines()]  # fmt: skip
    assert [line["id"] for line in lines] == [f"exp-{i:03d}" for i in range(DEVICES)]
    assert lines[3]["tags"] == {"region": "eu", "n": 3}
    assert lines[3]["properties"]["desired"] == {"interval": 3}
    assert lines[0]["status"] == "disabled"
    assert lines[1]["authentication"]["symmetricKey"]["primaryKey"] == keys["exp-001"]

    # The same file, uploaded to the other hub's store, imported there (createOrUpdate).
    with TwinManager.from_local_hub(target) as other:
        store = other.artifact_store()
        store.put_blob("restore", "devices.txt", _blob(out, "devices.txt",
                                                       source.ca_certificate_path))  # fmt: skip
        url = store.container_url("restore")
        target_jobs = jobs_of(target)
        job = target_jobs.create_import_export_job(
            JobProperties(
                type="import", input_blob_container_uri=url, output_blob_container_uri=url
            )
        )
        assert _wait(target_jobs, job.job_id).status == "completed"
        assert store.get_blob("restore", "importErrors.log") == b""
        assert other.queries.count() == DEVICES
        twin = other.twins.get("exp-003")
        assert (twin.tags, twin.desired) == ({"region": "eu", "n": 3}, {"interval": 3})
        assert other.devices.get("exp-001").primary_key == keys["exp-001"]
        assert other.devices.get("exp-010").status == "disabled"


def test_bad_and_hostile_lines_fail_alone(
    hub: LocalHub, jobs_of: Callable[[LocalHub], Any]
) -> None:
    with TwinManager.from_local_hub(hub) as fleet:
        fleet.devices.create("taken")
        store = fleet.artifact_store()
        lines = [
            json.dumps({"id": "good-1", "importMode": "create", "tags": {"a": 1}}),
            "{not json",
            json.dumps({"id": "taken", "importMode": "create"}),
            json.dumps(["a", "list"]),
            json.dumps({"id": "good-2"}),
            "",
            json.dumps({"id": "missing", "importMode": "update"}),
            json.dumps({"id": "bad mode", "importMode": "explode"}),
            '{"id": "deep", "tags": {"a": ' + "[" * 40 + "1" + "]" * 40 + "}}",
            "x" * 70_000,
            json.dumps({"id": "taken", "importMode": "delete"}),
            json.dumps({"id": "stale", "importMode": "updateIfMatchETag", "eTag": "nope"}),
        ]
        store.put_blob("in", "devices.txt", "\n".join(lines).encode() + b"\n")
        url = store.container_url("in")
        jobs = jobs_of(hub)
        job = jobs.create_import_export_job(
            JobProperties(
                type="import", input_blob_container_uri=url, output_blob_container_uri=url
            )
        )
        assert _wait(jobs, job.job_id).status == "completed"
        errors = [
            json.loads(line) for line in store.get_blob("in", "importErrors.log").splitlines()
        ]
        assert [(e["line"], e["errorCode"]) for e in errors] == [
            (2, "ArgumentInvalid"), (3, "DeviceAlreadyExists"), (4, "ArgumentInvalid"),
            (7, "DeviceNotFound"), (8, "ArgumentInvalid"), (9, "ArgumentInvalid"),
            (10, "ArgumentInvalid"), (12, "DeviceNotFound"),
        ]  # fmt: skip
        assert all(e["errorStatus"] for e in errors)
        assert sorted(d.device_id for d in fleet.devices.list()) == ["good-1", "good-2"]
        assert fleet.twins.get("good-1").tags == {"a": 1}


def test_a_job_is_refused_with_a_reason(hub: LocalHub, jobs_of: Callable[[LocalHub], Any]) -> None:
    jobs = jobs_of(hub)
    with TwinManager.from_local_hub(hub) as fleet:
        read_only = fleet.artifact_store().container_url("c", permissions="r")
        writable = fleet.artifact_store().container_url("c", permissions="w")
    cases = [
        (JobProperties(type="export", output_blob_container_uri=read_only),
         "does not allow writing"),
        (JobProperties(type="export", output_blob_container_uri="https://example.com/c?sig=x"),
         "this hub's artifacts store"),
        (JobProperties(type="export", output_blob_container_uri=writable[:-3] + "abc"),
         "signature is not valid"),
        (JobProperties(type="backup", output_blob_container_uri=read_only), "import or export"),
    ]  # fmt: skip
    for properties, message in cases:
        with pytest.raises(HttpOperationError) as refused:
            jobs.create_import_export_job(properties)
        assert refused.value.response.status_code == 400
        assert message in refused.value.response.text
    assert jobs.get_import_export_jobs() == []


class _Stuck:
    """A `sleep` for the hub's quotas that never returns: a job that must wait stays put."""

    def __init__(self) -> None:
        self.waiting = 0

    async def __call__(self, seconds: float) -> None:
        self.waiting += 1
        await asyncio.Event().wait()


def test_an_import_resumes_after_a_restart(
    make_hub: Callable[..., LocalHub], jobs_of: Callable[[LocalHub], Any], tmp_path: Any
) -> None:
    stuck = _Stuck()
    # S1's job pacing (10 a second) banking 10 s: 100 device operations, two chunks of 50; the
    # frozen clock pays nothing back, so the job then waits for good.
    limits = Quotas("S1", 1, clock=lambda: 0.0, sleep=stuck, burst=10.0)
    hub = make_hub(tmp_path / "restart", limits=limits)
    host = hub.host
    with TwinManager.from_local_hub(hub) as fleet:
        store = fleet.artifact_store()
        lines = [json.dumps({"id": f"r-{i:03d}", "tags": {"i": i}}) for i in range(300)]
        store.put_blob("in", "devices.txt", "\n".join(lines).encode())
        url = store.container_url("in")
        jobs = jobs_of(hub)
        job = jobs.create_import_export_job(
            JobProperties(
                type="import", input_blob_container_uri=url, output_blob_container_uri=url
            )
        )
        deadline = time.monotonic() + 30
        while not stuck.waiting:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        halfway = jobs.get_import_export_job(job.job_id)
        assert halfway.status == "running"
        assert 0 < halfway.progress < 100
        assert fleet.queries.count() == 100
    hub.close()

    again = make_hub(tmp_path / "restart", host=host)
    jobs = jobs_of(again)
    assert _wait(jobs, job.job_id).status == "completed"
    with TwinManager.from_local_hub(again) as fleet:
        assert fleet.queries.count() == 300
        assert fleet.twins.get("r-150").tags == {"i": 150}
        assert {t.version for t in fleet.queries.twins(page_size=1000)} == {2}, (
            "a line applied twice"
        )
        assert fleet.artifact_store().get_blob("in", "importErrors.log") == b""


def test_cancel(hub: LocalHub, jobs_of: Callable[[LocalHub], Any]) -> None:
    jobs = jobs_of(hub)
    with TwinManager.from_local_hub(hub) as fleet:
        url = fleet.artifact_store().container_url("out")
    job = jobs.create_import_export_job(JobProperties(type="export", output_blob_container_uri=url))
    jobs.cancel_import_export_job(job.job_id)
    assert jobs.get_import_export_job(job.job_id).status in ("cancelled", "completed")
    with pytest.raises(HttpOperationError) as missing:
        jobs.get_import_export_job("no-such-job")
    assert missing.value.response.status_code == 404


def test_a_job_that_cannot_run_fails_with_a_reason_and_keys_stay_out_when_asked(
    hub: LocalHub, jobs_of: Callable[[LocalHub], Any]
) -> None:
    jobs = jobs_of(hub)
    with TwinManager.from_local_hub(hub) as fleet:
        fleet.devices.create("secretive")
        store = fleet.artifact_store()
        empty = store.container_url("empty")
        job = jobs.create_import_export_job(
            JobProperties(
                type="import", input_blob_container_uri=empty, output_blob_container_uri=empty
            )
        )
        failed = _wait(jobs, job.job_id)
        assert failed.status == "failed"
        assert "no blob 'devices.txt'" in failed.failure_reason

        out = store.container_url("out")
        job = jobs.create_import_export_job(
            JobProperties(type="export", output_blob_container_uri=out, exclude_keys_in_export=True)
        )
        assert _wait(jobs, job.job_id).status == "completed"
        line = json.loads(store.get_blob("out", "devices.txt"))
        assert line["id"] == "secretive"
        assert line["authentication"]["symmetricKey"] == {"primaryKey": None, "secondaryKey": None}
