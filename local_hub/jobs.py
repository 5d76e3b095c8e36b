"""Scheduled jobs: a twin update or a direct method for every device a query condition selects.

A job moves `queued`/`scheduled` -> `running` -> `completed`, or is `cancelled`. As on IoT Hub,
devices that fail do not fail the job: a job whose devices partly (or all) failed ends `completed`
and counts them in `deviceJobStatistics.failedCount`; the same holds when its
`maxExecutionTimeInSeconds` runs out, where the devices not done by then are failed. A job ends
`failed` only when the job itself could not run (its targets could not be chosen).

The query condition is an IoT Hub condition, or `*` for every device (what Microsoft's samples
send). Its targets are fixed when it starts: the matching device ids are written to the store, each
as a `pending` row, in one transaction with the job's move to `running`, before any device is
touched. Each device row is marked `completed` or `failed` durably as soon as its work ends, so a
hub killed mid-job resumes on restart with exactly the rows not yet recorded, and never applies a
recorded one twice. Work fans out with a bounded number of devices in flight, paced by the hub's
quotas when it has them ("jobs device operations"). A method job waits for an offline device to
connect for the method's `connectTimeoutInSeconds` when one is given, else until the job's time
runs out, then fails that device with `DeviceNotOnline`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import queries
from local_hub import errors, registry, store
from local_hub.clock import Clock, iso
from local_hub.job_records import JobRecords
from local_hub.mqtt import DeviceEndpoint
from local_hub.quotas import Quotas

__all__ = ["EVERY_DEVICE", "JOB_TYPES", "JobRunner", "parse_time", "targets"]

log = logging.getLogger(__name__)

JOB_TYPES = ("scheduleUpdateTwin", "scheduleDeviceMethod")
FINISHED = ("completed", "failed", "cancelled")
EVERY_DEVICE = "*"
IN_FLIGHT = 32
_JOB_ID_LIMIT = 64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job_devices (
    job_id TEXT NOT NULL, device_id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (job_id, device_id)
);
"""


def parse_time(value: Any, field: str) -> float:
    """Unix seconds from an ISO-8601 time; BadRequest naming `field` when it is not one."""
    if not isinstance(value, str):
        raise errors.BadRequest(f"{field} must be an ISO-8601 time such as 2026-11-24T14:00:00Z.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.BadRequest(f"{field} {value!r} is not an ISO-8601 time.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def targets(condition: str, *, strict: bool = False) -> Callable[[dict[str, Any]], bool]:
    """Which twins a job's query condition selects: `*` selects every device.

    Raises:
        QueryError: the condition is not valid IoT Hub query text.
    """
    if condition.strip() == EVERY_DEVICE:
        return lambda _twin: True
    return queries.parse_condition(condition, strict=strict).matches


def _validate(job_id: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.BadRequest("The job request must be a JSON object.")
    if not job_id or len(job_id) > _JOB_ID_LIMIT:
        raise errors.BadRequest(f"Job ids have 1 to {_JOB_ID_LIMIT} characters.")
    if body.get("jobId", job_id) != job_id:
        raise errors.BadRequest("The jobId in the body differs from the one in the path.")
    kind = body.get("type")
    if kind not in JOB_TYPES:
        raise errors.BadRequest(f"Job type {kind!r} is not one of {', '.join(JOB_TYPES)}.")
    condition = body.get("queryCondition")
    if not isinstance(condition, str) or not condition.strip():
        raise errors.BadRequest(
            'queryCondition is required, e.g. "tags.ring = \'canary\'" (or "*" for every device).'
        )
    try:
        targets(condition, strict=True)
    except queries.QueryError as exc:
        raise errors.BadRequest(f"queryCondition is invalid. {exc}", error_code="400020") from None
    parse_time(body.get("startTime"), "startTime")
    limit = body.get("maxExecutionTimeInSeconds", 3600)
    if type(limit) is not int or limit <= 0:
        raise errors.BadRequest("maxExecutionTimeInSeconds must be a positive whole number.")
    job: dict[str, Any] = {
        "jobId": job_id,
        "type": kind,
        "queryCondition": condition,
        "startTime": body["startTime"],
        "maxExecutionTimeInSeconds": limit,
    }
    if kind == "scheduleUpdateTwin":
        twin = body.get("updateTwin")
        if not isinstance(twin, dict) or not (twin.get("tags") or twin.get("properties")):
            raise errors.BadRequest("updateTwin must hold tags and/or properties.desired.")
        registry.service_patch(twin)
        job["updateTwin"] = twin
    else:
        method = body.get("cloudToDeviceMethod")
        if not isinstance(method, dict) or not isinstance(method.get("methodName"), str):
            raise errors.BadRequest("cloudToDeviceMethod must hold a methodName.")
        job["cloudToDeviceMethod"] = method
    return job


class JobRunner:
    """Creates, runs, resumes and cancels jobs on the hub's event loop."""

    def __init__(
        self, db: store.Store, hub_registry: registry.Registry, endpoint: DeviceEndpoint,
        *, clock: Clock, quotas: Quotas | None = None,
    ) -> None:  # fmt: skip
        self._store = db
        self._quotas = quotas
        self._registry = hub_registry
        self._endpoint = endpoint
        self._clock = clock
        self._records = JobRecords(db, "jobs", "job")
        db.executescript(_SCHEMA)

    # -- persistence -----------------------------------------------------------------------

    def _save_device(self, row: dict[str, Any], *, staged: bool = False) -> None:
        write = ("INSERT OR REPLACE INTO job_devices (job_id, device_id, doc) VALUES (?, ?, ?)",
                 (row["jobId"], row["deviceId"], json.dumps(row)))  # fmt: skip
        if staged:
            self._store.stage([write])
        else:
            self._store.execute(*write)

    def _device_rows(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._store.execute(
            "SELECT doc FROM job_devices WHERE job_id = ? ORDER BY device_id", (job_id,)
        )
        return [json.loads(doc) for (doc,) in rows]

    def device_job_rows(self) -> Iterator[dict[str, Any]]:
        """Every device's part in every job: the rows of `devices.jobs`."""
        for (doc,) in self._store.execute("SELECT doc FROM job_devices ORDER BY job_id, device_id"):
            yield json.loads(doc)

    def _statistics(self, job_id: str) -> dict[str, int]:
        counts = {"pending": 0, "running": 0, "completed": 0, "failed": 0, "canceled": 0}
        for row in self._device_rows(job_id):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return {
            "deviceCount": sum(counts.values()),
            "failedCount": counts["failed"],
            "succeededCount": counts["completed"],
            "runningCount": counts["running"],
            "pendingCount": counts["pending"],
        }

    def view(self, job: dict[str, Any]) -> dict[str, Any]:
        """The job as the REST API returns it (JobResponse)."""
        return {**job, "deviceJobStatistics": self._statistics(job["jobId"])}

    # -- the API ---------------------------------------------------------------------------

    def create(self, job_id: str, body: Any) -> dict[str, Any]:
        """Validate and store a job, then start or schedule it. Nothing is stored on error."""
        job = _validate(job_id, body)
        if self._records.load(job_id) is not None:
            raise errors.Conflict(f"A job with id {job_id!r} already exists.", error_code="409101")
        if self._quotas is not None:
            active = sum(1 for job in self._records.all() if job["status"] not in FINISHED)
            if active >= self._quotas.max_active_jobs:
                raise errors.TooManyActiveJobs(
                    f"{active} job(s) are already scheduled or running; an IoT hub on "
                    f"{self._quotas} runs at most {self._quotas.max_active_jobs} at once. Wait "
                    "for one to finish, or cancel it."
                )
        now = self._clock()
        start = parse_time(job["startTime"], "startTime")
        job.update(
            createdTime=iso(now),
            # As IoT Hub answers: a start time already past when the job arrives (the SDK's
            # "now", taken before the request left) becomes the creation time, so a job never
            # starts before it was created.
            startTime=iso(max(start, now)),
            status="queued" if start <= now else "scheduled",
            endTime=None,
            failureReason=None,
            statusMessage=None,
        )
        self._records.save(job)
        log.info("job %s %s (%s)", job_id, job["status"], job["type"])
        self._spawn(job_id)
        return self.view(job)

    def get(self, job_id: str) -> dict[str, Any]:
        job = self._records.load(job_id)
        if job is None:
            raise errors.NotFound(f"No job with id {job_id!r}.", error_code="404002")
        return self.view(job)

    def list(self, job_type: str | None, status: str | None) -> list[dict[str, Any]]:
        return [
            self.view(job)
            for job in self._records.all()
            if (job_type is None or job["type"] == job_type)
            and (status is None or job["status"] == status)
        ]

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._records.load(job_id)
        if job is None:
            raise errors.NotFound(f"No job with id {job_id!r}.", error_code="404002")
        if job["status"] not in FINISHED:
            job.update(status="cancelled", endTime=iso(self._clock()))
            self._records.save(job)
            for row in self._device_rows(job_id):
                if row["status"] in ("pending", "running"):
                    row.update(status="canceled", endTimeUtc=iso(self._clock()))
                    self._save_device(row)
            self._records.cancel_task(job_id)
            log.info("job %s cancelled", job_id)
        return self.view(job)

    def resume(self) -> None:
        """After a restart: carry on with every job that had not finished."""
        for job in self._records.all():
            if job["status"] not in FINISHED:
                self._spawn(job["jobId"])

    async def close(self) -> None:
        await self._records.close()

    # -- running ---------------------------------------------------------------------------

    def _spawn(self, job_id: str) -> None:
        self._records.spawn(job_id, self._run(job_id))

    async def _run(self, job_id: str) -> None:
        job = self._records.load(job_id)
        if job is None:
            return
        start = parse_time(job["startTime"], "startTime")
        if (delay := start - self._clock()) > 0:
            await asyncio.sleep(delay)
        job = self._records.load(job_id)
        if job is None or job["status"] in FINISHED:
            return
        deadline = start + job["maxExecutionTimeInSeconds"]
        if job["status"] != "running":
            try:
                self._fix_targets(job)
            except queries.QueryError as exc:  # stored before this hub checked it, say
                now = iso(self._clock())
                job.update(status="failed", endTime=now, failureReason=f"{exc}")
                self._records.save(job)
                log.warning("job %s failed: %s", job_id, exc)
                return
        pending = [r for r in self._device_rows(job_id) if r["status"] in ("pending", "running")]
        gate = asyncio.Semaphore(IN_FLIGHT)
        running = job

        async def one(row: dict[str, Any]) -> None:
            async with gate:
                if self._quotas is not None:
                    await self._quotas.pace("jobsDeviceOperations")
                await self._run_device(running, row, deadline)

        work = asyncio.gather(*(one(row) for row in pending))
        timed_out = False
        try:
            await asyncio.wait_for(work, max(0.0, deadline - self._clock()))
        except TimeoutError:
            timed_out = True
        job = self._records.load(job_id)
        if job is None or job["status"] in FINISHED:
            return
        now = iso(self._clock())
        for row in self._device_rows(job_id):
            if row["status"] in ("pending", "running"):
                row.update(
                    status="failed", endTimeUtc=now, lastUpdatedDateTimeUtc=now,
                    error={"code": "JobRunPreconditionFailed",
                           "description": "The job's maxExecutionTimeInSeconds ran out."},
                )  # fmt: skip
                self._save_device(row)
        # Devices that failed (or were not reached in time) fail alone; the job ran: completed.
        job.update(status="completed", endTime=now)
        if timed_out:
            job["statusMessage"] = (
                "The job's maxExecutionTimeInSeconds ran out before every device."
            )
        self._records.save(job)
        log.info("job %s %s", job_id, job["status"])

    def _fix_targets(self, job: dict[str, Any]) -> None:
        selects = targets(job["queryCondition"])
        chosen = [t["deviceId"] for t in self._registry.twins() if selects(t)]
        now = iso(self._clock())
        self._store.begin()
        try:
            for device_id in chosen:
                self._save_device(
                    {
                        "deviceId": device_id, "jobId": job["jobId"], "jobType": job["type"],
                        "status": "pending", "createdDateTimeUtc": now, "startTimeUtc": None,
                        "endTimeUtc": None, "lastUpdatedDateTimeUtc": now, "outcome": {},
                    }
                )  # fmt: skip
            job["status"] = "running"
            self._records.save(job)
            self._store.commit()
        except BaseException:
            self._store.rollback()
            raise
        log.info("job %s running on %d devices", job["jobId"], len(chosen))

    def _finish(self, job: dict[str, Any], row: dict[str, Any], *, staged: bool = False) -> None:
        """Record a device's end in the job, unless the job was cancelled meanwhile (`staged`:
        in this loop turn's group commit, see `Store.stage`)."""
        now = iso(self._clock())
        row.update(endTimeUtc=now, lastUpdatedDateTimeUtc=now)
        current = self._records.load(job["jobId"])
        if current is not None and current["status"] != "cancelled":
            self._save_device(row, staged=staged)

    async def _run_device(self, job: dict[str, Any], row: dict[str, Any], deadline: float) -> None:
        row.update(status="running", startTimeUtc=iso(self._clock()))
        if job["type"] == "scheduleUpdateTwin":
            # The patch and the record of it are staged in the same loop turn, so they commit
            # in one transaction (a kill leaves both or neither), with the other devices' of
            # that turn: one fsync for many devices, made off the loop.
            try:
                self._registry.update_twin(row["deviceId"], job["updateTwin"], None, wait=False)
                row["status"] = "completed"
            except errors.HubError as exc:
                row.update(
                    status="failed", error={"code": exc.code_name, "description": exc.message}
                )
            self._finish(job, row, staged=True)
            await self._store.durable()
            return
        method = job["cloudToDeviceMethod"]
        try:
            remaining = max(0.0, deadline - self._clock())
            given = method.get("connectTimeoutInSeconds")
            wait = (
                min(remaining, float(given)) if isinstance(given, int) and given > 0 else remaining
            )
            status, payload = await self._endpoint.invoke_method(
                row["deviceId"],
                method["methodName"],
                method.get("payload"),
                connect_timeout=wait,
                response_timeout=float(method.get("responseTimeoutInSeconds") or 30),
            )
            row["outcome"] = {"deviceMethodResponse": {"status": status, "payload": payload}}
            row["status"] = "completed"
        except errors.DeviceNotOnline:
            row.update(
                status="failed",
                error={"code": "DeviceNotOnline",
                       "description": "Timed out waiting for device to connect."},
            )  # fmt: skip
        except errors.HubError as exc:
            row.update(status="failed", error={"code": exc.code_name, "description": exc.message})
        self._finish(job, row)
