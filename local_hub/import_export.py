"""Import and export jobs: identities and twins in bulk, through blob containers.

IoT Hub moves whole registries with two job types (`POST /jobs/create`, `GET /jobs`,
`GET /jobs/{id}`, `DELETE /jobs/{id}` to cancel), reading and writing a *devices file* in a blob
container given by a SAS URI. The local hub does the same with its artifacts store standing in
for Blob Storage: a job's `inputBlobContainerUri` and `outputBlobContainerUri` are signed
container URLs of the hub's own artifacts endpoint (see `rest/containers.py`), checked when the
job is created (this hub, a valid signature, `r` to read, `w` to write).

The devices file (`devices.txt` unless `inputBlobName`/`outputBlobName` says otherwise) holds one
`ExportImportDevice` JSON object per line: `id`, `eTag`, `status`, `statusReason`,
`authentication` (keys, or null with `excludeKeysInExport`), `twinETag`, `tags`,
`properties.desired` (and, on export, `properties.reported`), and on import `importMode`
(`createOrUpdate` when absent; see `bulk_operations.IMPORT_MODES`).

- **export** writes every device, sorted by id, to a hidden file in the output container and
  renames it into place when complete, so a reader never sees half a file; a hub restarted
  mid-export starts the file again (an export changes nothing, so this is safe).
- **import** applies the lines in order, each on its own, in chunks: a chunk's changes and the
  job's record of how many lines are done (and of each line's error) commit in one SQLite
  transaction, so a hub killed mid-import resumes after the last committed line and never applies
  a line twice. A line that is not a JSON object within the hub's limits, or that the registry
  refuses, is an error of that line alone: `importErrors.log` in the output container gets one JSON
  object per failed line (`line`, `deviceId`, `errorCode`, `errorStatus`, `importMode`), and the job
  still completes, as IoT Hub's does. A job fails (`failureReason`) only when it cannot run at all:
  the input file is missing, say.

As on IoT Hub, one import or export job runs at a time; statuses are `enqueued`, `running`,
`completed`, `failed` and `cancelled`, and `progress` is a percentage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import jsonlimits
from local_hub import blobs, bulk_operations, errors, files, registry, store
from local_hub.clock import Clock, iso
from local_hub.job_records import JobRecords
from local_hub.quotas import Quotas

__all__ = ["CHUNK", "DEVICES_FILE", "ERRORS_FILE", "JOB_TYPES", "ImportExportJobs"]

log = logging.getLogger(__name__)

JOB_TYPES = ("import", "export")
DEVICES_FILE = "devices.txt"
ERRORS_FILE = "importErrors.log"
CHUNK = 50  # import lines per transaction; export devices per write
FINISHED = ("completed", "failed", "cancelled")
MAX_LINE = 64 * 1024  # bytes of one devices-file line (an identity with an 8 KB twin fits)
LINE_LIMITS = jsonlimits.Limits(max_bytes=MAX_LINE, max_depth=16, max_number_chars=100)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS import_export_jobs (job_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS import_errors (
    job_id TEXT NOT NULL, line INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (job_id, line)
);
"""

ContainerResolver = Callable[[Any, str, str], str]


def _lines(path: Path, skip: int) -> Generator[tuple[int, bytes | None], None, None]:
    """(line number, bytes) of each line after the first `skip`; None for a line too long."""
    with path.open("rb") as source:
        number = 0
        while True:
            raw = source.readline(MAX_LINE + 1)
            if not raw:
                return
            number += 1
            too_long = len(raw) > MAX_LINE and not raw.endswith(b"\n")
            if too_long:  # skip the rest of that line
                while raw and not raw.endswith(b"\n"):
                    raw = source.readline(MAX_LINE + 1)
            if number > skip:
                yield number, None if too_long else raw


class _Cancelled(Exception):
    """The export job was cancelled while it wrote its blob (which is then left as it was)."""


class ImportExportJobs:
    """Creates, runs, resumes and cancels import and export jobs on the hub's event loop.

    Args:
        db: the hub's store.
        hub_registry: the identities and twins.
        artifacts_dir: the artifacts store's directory (containers are directories in it).
        resolve: checks a container URL and returns its container (`field`, permission).
        clock: the time source.
        quotas: the hub's throttles, if any: each line's work is paced as a job's device work.
    """

    def __init__(
        self, db: store.Store, hub_registry: registry.Registry, artifacts_dir: Path,
        *, clock: Clock, quotas: Quotas | None = None,
    ) -> None:  # fmt: skip
        self._store = db
        self._registry = hub_registry
        self._artifacts = artifacts_dir
        self._clock = clock
        self._quotas = quotas
        self._records = JobRecords(db, "import_export_jobs", "ie-job")
        db.executescript(_SCHEMA)

    # -- persistence -----------------------------------------------------------------------

    def _all(self) -> list[dict[str, Any]]:
        return sorted(self._records.all(), key=lambda j: j["createdTime"])

    @staticmethod
    def view(job: dict[str, Any]) -> dict[str, Any]:
        """The job as the REST API returns it (JobProperties)."""
        return {k: v for k, v in job.items() if not k.startswith("_")}

    # -- the API ---------------------------------------------------------------------------

    def create(self, body: Any, resolve: ContainerResolver) -> dict[str, Any]:
        """Validate and store a job, then start it. Nothing is stored on error.

        Raises:
            BadRequest: a field is missing or wrong (named in the message).
            Conflict: another import or export job is running, or the job id is taken.
        """
        if not isinstance(body, dict):
            raise errors.BadRequest("The job must be a JSON object (JobProperties).")
        kind = body.get("type")
        if kind not in JOB_TYPES:
            raise errors.BadRequest(
                f"type {str(kind)[:40]!r} is not an import/export job type: use import or export."
            )
        job_id = body.get("jobId") or str(uuid.uuid4())
        if not isinstance(job_id, str) or not 1 <= len(job_id) <= 64:
            raise errors.BadRequest("jobId must be text of 1 to 64 characters.")
        output = resolve(body.get("outputBlobContainerUri"), "outputBlobContainerUri", "w")
        job: dict[str, Any] = {
            "jobId": job_id,
            "type": kind,
            "status": "enqueued",
            "progress": 0,
            "outputBlobContainerUri": body["outputBlobContainerUri"],
            "_output": output,
        }
        names = {"outputBlobName": DEVICES_FILE if kind == "export" else ERRORS_FILE}
        if kind == "import":
            job["inputBlobContainerUri"] = body.get("inputBlobContainerUri")
            job["_input"] = resolve(body.get("inputBlobContainerUri"), "inputBlobContainerUri",
                                    "r")  # fmt: skip
            names["inputBlobName"] = DEVICES_FILE
        else:
            exclude = body.get("excludeKeysInExport", False)
            if not isinstance(exclude, bool):
                raise errors.BadRequest("excludeKeysInExport must be true or false.")
            job["excludeKeysInExport"] = exclude
        for field, default in names.items():
            name = body.get(field) or default
            if not isinstance(name, str):
                raise errors.BadRequest(f"{field} must be a blob name.")
            blobs.blob_path(self._artifacts, job["_output"], name)  # checks the name
            job[field] = name
        if self._records.load(job_id) is not None:
            raise errors.Conflict(f"A job with id {job_id!r} already exists.", error_code="409101")
        active = [j["jobId"] for j in self._all() if j["status"] not in FINISHED]
        if active:
            raise errors.Conflict(
                f"Import/export job {active[0]!r} has not finished; an IoT hub runs one "
                "import or export job at a time. Wait for it, or cancel it (DELETE /jobs/{id}).",
                error_code="409101",
            )
        now = iso(self._clock())
        job.update(createdTime=now, startTimeUtc=now, endTimeUtc=None, failureReason=None,
                   _linesDone=0)  # fmt: skip
        self._records.save(job)
        log.info("import/export job %s enqueued (%s)", job_id, kind)
        self._spawn(job_id)
        return self.view(job)

    def get(self, job_id: str) -> dict[str, Any]:
        job = self._records.load(job_id)
        if job is None:
            raise errors.NotFound(f"No import/export job with id {job_id!r}.", error_code="404002")
        return self.view(job)

    def jobs(self) -> list[dict[str, Any]]:
        return [self.view(job) for job in self._all()]

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._records.load(job_id)
        if job is None:
            raise errors.NotFound(f"No import/export job with id {job_id!r}.", error_code="404002")
        if job["status"] not in FINISHED:
            job.update(status="cancelled", endTimeUtc=iso(self._clock()))
            self._records.save(job)
            self._records.cancel_task(job_id)
            log.info("import/export job %s cancelled", job_id)
        return self.view(job)

    def resume(self) -> None:
        """After a restart: carry on with the job that had not finished, if any."""
        for job in self._all():
            if job["status"] not in FINISHED:
                self._spawn(job["jobId"])

    async def close(self) -> None:
        await self._records.close()

    # -- running ---------------------------------------------------------------------------

    def _spawn(self, job_id: str) -> None:
        self._records.spawn(job_id, self._run(job_id))

    def _current(self, job_id: str) -> dict[str, Any] | None:
        """The stored job while it is still to run; None once it finished (or was cancelled)."""
        job = self._records.load(job_id)
        return None if job is None or job["status"] in FINISHED else job

    async def _run(self, job_id: str) -> None:
        job = self._current(job_id)
        if job is None:
            return
        job["status"] = "running"
        self._records.save(job)
        try:
            if job["type"] == "export":
                await self._export(job)
            else:
                await self._import(job)
        except (OSError, errors.HubError) as exc:
            reason = exc.message if isinstance(exc, errors.HubError) else f"{exc.strerror}"
            self._fail(job_id, reason)
        except Exception:  # a bug must not leave the one job slot taken for good
            log.exception("import/export job %s failed", job_id)
            self._fail(job_id, "The job failed inside the hub; the hub's log says why.")

    def _fail(self, job_id: str, reason: str) -> None:
        current = self._current(job_id)
        if current is not None:
            current.update(status="failed", endTimeUtc=iso(self._clock()), failureReason=reason)
            self._records.save(current)
        log.warning("import/export job %s failed: %s", job_id, reason)

    def _finish(self, job_id: str) -> None:
        job = self._current(job_id)
        if job is not None:
            job.update(status="completed", progress=100, endTimeUtc=iso(self._clock()))
            self._records.save(job)
            log.info("import/export job %s completed", job_id)

    def _export_line(self, device_id: str, exclude_keys: bool) -> dict[str, Any] | None:
        device = self._registry.get_device(device_id)
        twin = self._registry.twin_view(device_id)
        if device is None or twin is None:
            return None
        identity = device.identity
        symmetric = identity["authentication"]["symmetricKey"]
        keys = {"primaryKey": None, "secondaryKey": None} if exclude_keys else dict(symmetric)
        strip = {"$metadata", "$version"}
        properties = twin["properties"]
        return {
            "id": device_id,
            "eTag": identity["etag"],
            "status": identity["status"],
            "statusReason": identity.get("statusReason"),
            "authentication": {"symmetricKey": keys, "type": "sas",
                               "x509Thumbprint": identity["authentication"]["x509Thumbprint"]},
            "twinETag": twin["etag"],
            "tags": twin["tags"],
            "properties": {
                section: {k: v for k, v in properties[section].items() if k not in strip}
                for section in ("desired", "reported")
            },
            "capabilities": identity.get("capabilities", {"iotEdge": False}),
        }  # fmt: skip

    async def _export(self, job: dict[str, Any]) -> None:
        job_id = job["jobId"]
        target = blobs.blob_path(self._artifacts, job["_output"], job["outputBlobName"])
        target.parent.mkdir(parents=True, exist_ok=True)
        ids = list(self._registry.ordered_ids())
        try:
            with files.atomic_writer(target) as out:
                for start in range(0, len(ids), CHUNK):
                    chunk = ids[start : start + CHUNK]
                    if self._quotas is not None:
                        await self._quotas.pace("jobsDeviceOperations", len(chunk))
                    for device_id in chunk:
                        line = self._export_line(device_id, job["excludeKeysInExport"])
                        if line is not None:
                            out.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
                    current = self._current(job_id)
                    if current is None:
                        raise _Cancelled
                    current["progress"] = min(99, (start + len(chunk)) * 100 // max(1, len(ids)))
                    self._records.save(current)
                    await asyncio.sleep(0)
                if self._current(job_id) is None:
                    raise _Cancelled
        except _Cancelled:
            return  # the job was cancelled: the container keeps what it had
        self._finish(job_id)

    async def _import(self, job: dict[str, Any]) -> None:
        job_id = job["jobId"]
        source = blobs.blob_path(self._artifacts, job["_input"], job["inputBlobName"])
        if not source.is_file():
            raise errors.BadRequest(
                f"The input container has no blob {job['inputBlobName']!r}; upload the devices "
                "file there first."
            )
        total = max(1, source.stat().st_size)
        with contextlib.closing(_lines(source, job["_linesDone"])) as lines:  # closes the file
            while chunk := [line for _, line in zip(range(CHUNK), lines, strict=False)]:
                if self._quotas is not None:
                    await self._quotas.pace("jobsDeviceOperations", len(chunk))
                current = self._current(job_id)
                if current is None:
                    return
                self._apply_chunk(current, chunk, total)
                await asyncio.sleep(0)
        self._write_errors(job)
        self._finish(job_id)

    def _apply_chunk(self, job: dict[str, Any], chunk: list[tuple[int, bytes | None]],
                     total: int) -> None:  # fmt: skip
        """Apply lines and record them (and their errors) in one transaction."""
        self._store.begin()
        try:
            for number, raw in chunk:
                failure = self._apply_line(raw)
                if failure is not None:
                    self._store.execute(
                        "INSERT OR REPLACE INTO import_errors (job_id, line, doc) VALUES (?, ?, ?)",
                        (job["jobId"], number, json.dumps({"line": number, **failure})),
                    )
            job["_linesDone"] = chunk[-1][0]
            job["_bytesDone"] = job.get("_bytesDone", 0) + sum(len(r or b"") for _, r in chunk)
            job["progress"] = min(99, job["_bytesDone"] * 100 // total)
            self._records.save(job)
            self._store.commit()
        except BaseException:
            self._store.rollback()
            raise

    def _apply_line(self, raw: bytes | None) -> dict[str, Any] | None:
        """Apply one line; its error (None when it succeeded or was blank)."""
        if raw is None:
            return {"deviceId": None, "errorCode": "ArgumentInvalid", "importMode": None,
                    "errorStatus": f"The line is longer than {MAX_LINE} bytes."}  # fmt: skip
        if not raw.strip():
            return None
        try:
            entry = jsonlimits.loads(raw, LINE_LIMITS)
        except jsonlimits.JSONRefused as exc:
            return {"deviceId": None, "errorCode": "ArgumentInvalid", "importMode": None,
                    "errorStatus": f"The line is not a JSON object: {exc.reason}."}  # fmt: skip
        if not isinstance(entry, dict):
            why = "The line is not a JSON object (ExportImportDevice)."
            return {"deviceId": None, "errorCode": "ArgumentInvalid", "importMode": None,
                    "errorStatus": why}  # fmt: skip
        device_id = entry.get("id")
        mode = entry.get("importMode", "createOrUpdate")
        failure = {"deviceId": device_id if isinstance(device_id, str) else None,
                   "importMode": mode if isinstance(mode, str) else None}  # fmt: skip
        try:
            warning = bulk_operations.apply_entry(
                self._registry, entry, mode, bulk_operations.IMPORT_MODES
            )
        except errors.HubError as exc:
            return {**failure, "errorCode": exc.code_name, "errorStatus": exc.message}
        if warning is not None:
            return {**failure, "errorCode": "DeviceRegisteredWithoutTwin", "errorStatus": warning}
        return None

    def _write_errors(self, job: dict[str, Any]) -> None:
        rows = self._store.execute(
            "SELECT doc FROM import_errors WHERE job_id = ? ORDER BY line", (job["jobId"],)
        ).fetchall()
        target = blobs.blob_path(self._artifacts, job["_output"], job["outputBlobName"])
        target.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{doc}\n" for (doc,) in rows)
        files.write_atomic(target, text.encode())
        if rows:
            log.info("import job %s: %d lines failed (%s)", job["jobId"], len(rows), target.name)
