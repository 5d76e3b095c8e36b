"""`Jobs`: scheduled jobs that patch twins or call a method on every device a condition selects."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from queries import nodes
from twin_manager import models, raw, schemes
from twin_manager._sdk import Sdk
from twin_manager.methods import method_request
from twin_manager.polling import poll_until
from twin_manager.querying import Queries
from twin_manager.twins import twin_patch

__all__ = ["Jobs", "iso"]


def iso(moment: datetime) -> str:
    """`moment` as IoT Hub writes times: ISO-8601 in UTC with microseconds and a `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Jobs:
    """Jobs of one hub (`fleet.jobs`): scheduled jobs that patch twins or call a method on the
    devices a condition selects, and import/export jobs that move identities and twins in bulk
    through blob containers."""

    def __init__(
        self, sdk: Sdk, queries: Queries, scheme: schemes.FleetScheme | None = None
    ) -> None:
        self._sdk = sdk
        self._queries = queries
        self._scheme = scheme

    def _schedule(
        self,
        kind: Literal["scheduleUpdateTwin", "scheduleDeviceMethod"],
        query_condition: str,
        job_id: str | None,
        start: datetime | None,
        max_execution: int,
        work: raw.RawJobWork,
    ) -> models.Job:
        self._queries.validate_condition(query_condition)
        job: raw.RawJobRequest = {
            **work,
            "jobId": job_id or f"twinfleet-{uuid.uuid4().hex[:16]}",
            "type": kind,
            "queryCondition": query_condition,
            "startTime": iso(start or datetime.now(UTC)),
            "maxExecutionTimeInSeconds": max_execution,
        }
        return models.Job.model_validate(self._sdk.create_job(job))

    def schedule_twin_update(
        self,
        query_condition: str,
        *,
        desired: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        start: datetime | None = None,
        max_execution: int = 3600,
        job_id: str | None = None,
    ) -> models.Job:
        """Apply a twin patch to every device the condition selects, as a hub job.

        Raises:
            InvalidQuery: the condition is not one IoT Hub would accept.
            InvalidTags: the fleet's scheme does not allow the tags (nothing was sent).
            ValueError: neither `desired` nor `tags` is given.
        """
        if desired is None and tags is None:
            raise ValueError("A twin update job needs desired properties, tags, or both.")
        if tags is not None and self._scheme is not None:
            self._scheme.check_tags(tags)
        patch = twin_patch(tags, desired)
        patch["etag"] = "*"
        return self._schedule(
            "scheduleUpdateTwin", query_condition, job_id, start, max_execution,
            {"updateTwin": patch},
        )  # fmt: skip

    def schedule_method(
        self,
        query_condition: str,
        method: str,
        payload: Any = None,
        *,
        timeout: int = 30,
        connect_timeout: int = 0,
        start: datetime | None = None,
        max_execution: int = 3600,
        job_id: str | None = None,
    ) -> models.Job:
        """Call a direct method on every device the condition selects, as a hub job.

        Raises:
            InvalidQuery: the condition is not one IoT Hub would accept.
        """
        call = method_request(method, payload, timeout, connect_timeout)
        return self._schedule(
            "scheduleDeviceMethod", query_condition, job_id, start, max_execution,
            {"cloudToDeviceMethod": call},
        )  # fmt: skip

    def get(self, job_id: str) -> models.Job:
        return models.Job.model_validate(self._sdk.get_job(job_id))

    def cancel(self, job_id: str) -> models.Job:
        return models.Job.model_validate(self._sdk.cancel_job(job_id))

    def list(
        self, job_type: str | None = None, status: str | None = None
    ) -> builtins.list[models.Job]:
        """The hub's jobs, of one type and status when given."""
        return [models.Job.model_validate(job) for job in self._sdk.list_jobs(job_type, status)]

    def results(self, job_id: str) -> builtins.list[models.DeviceJobResult]:
        """Each device's part in a job (`SELECT * FROM devices.jobs WHERE ...jobId = ...`)."""
        text = f"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = {nodes.literal_sql(job_id)}"
        rows = self._queries.run(text, page_size=1000)
        return [models.DeviceJobResult.model_validate(row) for row in rows]

    def wait(
        self,
        job_id: str,
        timeout: float,
        *,
        on_progress: Callable[[models.Job], None] | None = None,
        poll: float = 0.5,
    ) -> models.Job:
        """Poll until the job completes, fails or is cancelled.

        Raises:
            TimeoutError: the job has not finished within `timeout` seconds.
        """

        def read() -> models.Job:
            job = self.get(job_id)
            if on_progress is not None:
                on_progress(job)
            return job

        return poll_until(
            read,
            lambda job: job.finished,
            timeout=timeout,
            poll=poll,
            late=lambda job: f"Job {job_id!r} is still {job.status} after {timeout:g} s.",
        )

    # -- import and export jobs ------------------------------------------------------------

    def export_devices(
        self, output_container_url: str, *, exclude_keys: bool = True
    ) -> models.ImportExportJob:
        """Start an export job: every identity and twin, one JSON line each, to `devices.txt`
        in the blob container (a Blob SAS URL on Azure; `ArtifactStore.container_url` on a
        local hub).

        Raises:
            Conflict: another import or export job is running.
        """
        return self._import_export(
            {"type": "export", "outputBlobContainerUri": output_container_url,
             "excludeKeysInExport": exclude_keys}
        )  # fmt: skip

    def import_devices(
        self, input_container_url: str, output_container_url: str
    ) -> models.ImportExportJob:
        """Start an import job: the `devices.txt` of the input container, line by line (each
        line's `importMode`, `createOrUpdate` by default); failed lines go to `importErrors.log`
        in the output container.

        Raises:
            Conflict: another import or export job is running.
        """
        return self._import_export(
            {"type": "import", "inputBlobContainerUri": input_container_url,
             "outputBlobContainerUri": output_container_url}
        )  # fmt: skip

    def _import_export(self, job: raw.RawImportExportRequest) -> models.ImportExportJob:
        return models.ImportExportJob.model_validate(self._sdk.create_import_export_job(job))

    def get_import_export(self, job_id: str) -> models.ImportExportJob:
        return models.ImportExportJob.model_validate(self._sdk.get_import_export_job(job_id))

    def wait_import_export(
        self, job_id: str, timeout: float, *, poll: float = 0.5
    ) -> models.ImportExportJob:
        """Poll until the import or export job completes, fails or is cancelled.

        Raises:
            TimeoutError: it has not finished within `timeout` seconds.
        """
        return poll_until(
            lambda: self.get_import_export(job_id),
            lambda job: job.finished,
            timeout=timeout,
            poll=poll,
            late=lambda job: f"Job {job_id!r} is still {job.status} after {timeout:g} s.",
        )
