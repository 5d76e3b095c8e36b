"""`TwinManager`: the back end's handle on a fleet, on Azure IoT Hub or the local hub alike.

Every call goes through the official `azure-iot-hub` SDK, retried on transient failures
(`retrying.RetryPolicy`) and translated into `twin_manager.errors`. Queries are parsed locally
first, so a bad query fails with its position before any request is made. It is thread-safe:
each thread uses SDK clients of its own.
"""

from __future__ import annotations

import base64
import concurrent.futures
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from twin_manager import artifacts, errors, hubdirs, models, provisioning, schemes
from twin_manager._sdk import Sdk
from twin_manager.querying import checked_condition, checked_query
from twin_manager.retrying import RetryPolicy
from twin_manager.sentinels import NOT_GIVEN, NotGiven
from twin_manager.usage import Usage

__all__ = ["HubLike", "TwinManager"]

log = logging.getLogger(__name__)

IfMatch = str | NotGiven


class HubLike(Protocol):
    """What `from_local_hub` needs of a hub (a `local_hub.LocalHub` has it)."""

    @property
    def service_connection_string(self) -> str: ...
    @property
    def ca_certificate_path(self) -> str: ...
    @property
    def device_host_name(self) -> str: ...
    @property
    def gateway_host_name(self) -> str: ...


def _quoted(etag: IfMatch) -> str | None:
    if isinstance(etag, NotGiven):
        return None
    return etag if etag.startswith('"') or etag == "*" else f'"{etag}"'


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TwinManager:
    """Devices, twins, methods, queries, jobs and configurations of one hub.

    Args:
        connection_string: a service connection string (e.g. the `iothubowner` policy's).
        ca_file: a CA file to trust for this hub's TLS, for this client only (the local hub's).
        retry: the retry policy for transient failures.
        device_host_name: the HostName devices use, when it differs from the service's.
        gateway_host_name: the GatewayHostName devices dial, if any.
        scheme: the fleet's metadata scheme (`twin_manager.schemes`): tag writes and query
            paths are checked against it before anything is sent; None checks nothing.

    Attributes:
        usage: the requests this manager sent, per IoT Hub throttle (see `twin_manager.usage`).
        provisioning: the Device Provisioning Service the fleet's devices register through,
            if it uses one (set it to let retirement stop devices from provisioning again).
    """

    def __init__(
        self,
        connection_string: str,
        *,
        ca_file: str | None = None,
        retry: RetryPolicy | None = None,
        device_host_name: str | None = None,
        gateway_host_name: str | None = None,
        scheme: schemes.FleetScheme | None = None,
    ) -> None:
        self.usage = Usage()  # what this manager asked of the hub, per IoT Hub throttle
        self._sdk = Sdk(connection_string, ca_file, self.usage)
        self.scheme = scheme
        self._paths = scheme.paths if scheme is not None else None
        self._connection_string = connection_string
        self._ca_file = ca_file
        self._retry = retry or RetryPolicy()
        # Devices name the hub without the service port (`HostName=10.0.0.5:8443` in a local
        # hub's service connection string; Azure's host names carry none): they dial 8883.
        self._device_host_name = device_host_name or _without_port(self._sdk.host_name)
        self._gateway_host_name = gateway_host_name
        self.provisioning: provisioning.ProvisioningService | None = None

    @classmethod
    def from_connection_string(
        cls, connection_string: str, *, ca_file: str | None = None,
        retry: RetryPolicy | None = None, scheme: schemes.FleetScheme | None = None,
    ) -> TwinManager:  # fmt: skip
        """A manager for the hub the connection string names (Azure IoT Hub or a local hub)."""
        return cls(connection_string, ca_file=ca_file, retry=retry, scheme=scheme)

    @classmethod
    def from_hub_dir(
        cls, data_dir: Path | str, *, retry: RetryPolicy | None = None,
        scheme: schemes.FleetScheme | None = None,
    ) -> TwinManager:  # fmt: skip
        """A manager for the local hub running in `data_dir` (`twinfleet hub serve --data-dir`).

        Raises:
            HubConfigurationError: no hub runs there, or its CA file is missing.
        """
        info = hubdirs.read_hub_dir(data_dir)
        return cls(
            info.service_connection_string,
            ca_file=info.ca_file,
            retry=retry,
            device_host_name=info.device_host_name,
            gateway_host_name=info.gateway_host_name,
            scheme=scheme,
        )

    @classmethod
    def from_local_hub(
        cls, hub: HubLike, *, retry: RetryPolicy | None = None,
        scheme: schemes.FleetScheme | None = None,
    ) -> TwinManager:  # fmt: skip
        """A manager for a running `local_hub.LocalHub` (trusting its CA)."""
        return cls(
            hub.service_connection_string,
            ca_file=hub.ca_certificate_path,
            retry=retry,
            device_host_name=hub.device_host_name,
            gateway_host_name=hub.gateway_host_name,
            scheme=scheme,
        )

    def artifact_store(self) -> artifacts.ArtifactStore:
        """The hub's artifact store (a local hub's; Azure IoT Hub has none)."""
        return artifacts.ArtifactStore(self._connection_string, ca_file=self._ca_file)

    def __enter__(self) -> TwinManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release nothing yet held beyond each call; kept for symmetry and future pooling."""

    def release_thread(self) -> None:
        """Close the SDK clients the calling thread made (each thread has its own): a worker
        thread calls it before it ends, so no HTTP session outlives it."""
        self._sdk.release()

    def _call(
        self, what: str, operation: Callable[[Any], Any], device_id: str | None = None
    ) -> Any:
        result = self._retry.call(lambda: self._sdk.call(what, operation, device_id), what)
        return None if result is None else result[0]

    # -- devices ---------------------------------------------------------------------------

    def create_device(
        self,
        device_id: str,
        *,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        enabled: bool = True,
    ) -> models.Device:
        """Register a device with SAS keys (generated when not given).

        Raises:
            Conflict: the id is taken.
        """
        keys = [
            k or base64.b64encode(secrets.token_bytes(32)).decode()
            for k in (primary_key, secondary_key)
        ]
        body = self._sdk.device(
            {
                "deviceId": device_id,
                "status": "enabled" if enabled else "disabled",
                "authentication": {
                    "type": "sas",
                    "symmetricKey": {"primaryKey": keys[0], "secondaryKey": keys[1]},
                },
                "capabilities": {"iotEdge": False},
            }
        )
        raw = self._call(
            f"Creating device {device_id!r}",
            lambda c: c.registry.protocol.devices.create_or_update_identity(
                device_id, body, raw=True
            ),
            device_id,
        )
        return models.Device.from_raw(raw)

    def get_device(self, device_id: str) -> models.Device:
        """Raises DeviceNotFound when there is no such device."""
        raw = self._call(
            f"Reading device {device_id!r}",
            lambda c: c.registry.protocol.devices.get_identity(device_id, raw=True),
            device_id,
        )
        return models.Device.from_raw(raw)

    def list_devices(self, top: int = 1000) -> list[models.Device]:
        raw = self._call(
            "Listing devices", lambda c: c.registry.protocol.devices.get_devices(top, raw=True)
        )
        return [models.Device.from_raw(d) for d in raw]

    def set_enabled(self, device_id: str, enabled: bool) -> models.Device:
        """Enable or disable a device (a disabled device cannot connect)."""
        device = self.get_device(device_id)
        body = self._sdk.device(
            {
                "deviceId": device_id,
                "status": "enabled" if enabled else "disabled",
                "authentication": {
                    "type": "sas",
                    "symmetricKey": {
                        "primaryKey": device.primary_key,
                        "secondaryKey": device.secondary_key,
                    },
                },
            }
        )
        raw = self._call(
            f"Updating device {device_id!r}",
            lambda c: c.registry.protocol.devices.create_or_update_identity(
                device_id, body, _quoted(device.etag or "*"), raw=True
            ),
            device_id,
        )
        return models.Device.from_raw(raw)

    def set_keys(
        self, device_id: str, primary_key: str, secondary_key: str, *, if_match: str
    ) -> models.Device:
        """Replace a device's SAS keys, only if its identity is still at `if_match` (its etag):
        the step of a key rotation, safe against another writer. The keys are secrets: they are
        never logged or put in an error.

        Raises:
            PreconditionFailed: the identity changed since it was read (read it again).
            DeviceNotFound: there is no such device.
        """
        device = self.get_device(device_id)
        body = self._sdk.device(
            {
                "deviceId": device_id,
                "status": device.status,
                "authentication": {
                    "type": "sas",
                    "symmetricKey": {"primaryKey": primary_key, "secondaryKey": secondary_key},
                },
            }
        )
        raw = self._call(
            f"Updating the keys of device {device_id!r}",
            lambda c: c.registry.protocol.devices.create_or_update_identity(
                device_id, body, _quoted(if_match), raw=True
            ),
            device_id,
        )
        return models.Device.from_raw(raw)

    def delete_device(self, device_id: str, *, if_match: IfMatch = NOT_GIVEN) -> None:
        self._call(
            f"Deleting device {device_id!r}",
            lambda c: c.registry.protocol.devices.delete_identity(
                device_id, _quoted(if_match) or "*", raw=True
            ),
            device_id,
        )

    def device_connection_string(
        self, device_id: str, *, gateway_host_name: str | None = None, key_type: str = "primary"
    ) -> str:
        """The connection string a device uses (it holds the device's key: keep it secret).

        Args:
            device_id: the device.
            gateway_host_name: the address devices dial, where it differs from the HostName.
            key_type: "primary" or "secondary": which of the identity's keys to use.
        """
        device = self.get_device(device_id)
        key = device.primary_key if key_type == "primary" else device.secondary_key
        text = f"HostName={self._device_host_name};DeviceId={device_id};SharedAccessKey={key}"
        gateway = gateway_host_name or self._gateway_host_name
        return text + (f";GatewayHostName={gateway}" if gateway else "")

    def bulk_registry(self, entries: list[dict[str, Any]]) -> models.BulkResult:
        """One bulk registry operation (`POST /devices`): up to 100 `ExportImportDevice`
        entries (`id`, `importMode` such as `create` or `updateTwin`, `status`,
        `authentication`, `tags`, `properties.desired`), each applied on its own.

        Returns:
            Which entries failed and why (every other entry was applied).

        Raises:
            ValueError: more than 100 entries, or none.
        """
        if not 1 <= len(entries) <= 100:
            raise ValueError(
                f"A bulk registry operation takes 1 to 100 devices, not {len(entries)}."
            )
        body = self._sdk.bulk_entries(entries)
        raw = self._call(
            f"Bulk registry operation on {len(entries)} devices",
            lambda c: c.registry.protocol.bulk_registry.update_registry(body, raw=True),
        )
        return models.BulkResult.from_raw(raw or {"isSuccessful": True})

    # -- twins -----------------------------------------------------------------------------

    def get_twin(self, device_id: str) -> models.Twin:
        raw = self._call(
            f"Reading the twin of {device_id!r}",
            lambda c: c.registry.protocol.devices.get_twin(device_id, raw=True),
            device_id,
        )
        return models.Twin.from_raw(raw)

    def update_twin(
        self,
        device_id: str,
        *,
        desired: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        if_match: IfMatch = NOT_GIVEN,
    ) -> models.Twin:
        """Merge-patch desired properties and/or tags (`None` values delete properties).

        Args:
            if_match: the etag the twin must still have (`twin.etag`), for optimistic
                concurrency; not given means "whatever it is now".

        Raises:
            InvalidTags: the fleet's scheme does not allow the tags (nothing was sent).
            PreconditionFailed: the twin changed since `if_match` was read.
        """
        if tags is not None and self.scheme is not None:
            self.scheme.check_tags(tags)
        body = self._sdk.twin_patch(
            dict(tags) if tags is not None else None, dict(desired) if desired is not None else None
        )
        raw = self._call(
            f"Updating the twin of {device_id!r}",
            lambda c: c.registry.protocol.devices.update_twin(
                device_id, body, _quoted(if_match) or "*", raw=True
            ),
            device_id,
        )
        return models.Twin.from_raw(raw)

    def update_desired(
        self, device_id: str, patch: Mapping[str, Any], *, if_match: IfMatch = NOT_GIVEN
    ) -> models.Twin:
        """Merge-patch desired properties; the hub pushes the patch to the device."""
        return self.update_twin(device_id, desired=patch, if_match=if_match)

    def update_tags(
        self, device_id: str, patch: Mapping[str, Any], *, if_match: IfMatch = NOT_GIVEN
    ) -> models.Twin:
        return self.update_twin(device_id, tags=patch, if_match=if_match)

    def replace_twin(
        self,
        device_id: str,
        *,
        desired: Mapping[str, Any],
        tags: Mapping[str, Any],
        if_match: IfMatch = NOT_GIVEN,
    ) -> models.Twin:
        """Replace desired properties and tags whole (what is not given is removed).

        Raises:
            InvalidTags: the fleet's scheme does not allow the tags (nothing was sent).
        """
        if self.scheme is not None:
            self.scheme.check_tags(tags, whole=True)
        body = self._sdk.twin_patch(dict(tags), dict(desired))
        raw = self._call(
            f"Replacing the twin of {device_id!r}",
            lambda c: c.registry.protocol.devices.replace_twin(
                device_id, body, _quoted(if_match) or "*", raw=True
            ),
            device_id,
        )
        return models.Twin.from_raw(raw)

    def update_desired_many(
        self, device_ids: Iterable[str], patch: Mapping[str, Any], *, max_workers: int = 8
    ) -> dict[str, models.Twin | errors.HubError]:
        """Apply one desired patch to many devices concurrently; each gets its twin or error."""
        ids = list(device_ids)

        def one(device_id: str) -> models.Twin | errors.HubError:
            try:
                return self.update_desired(device_id, patch)
            except errors.HubError as exc:
                return exc

        with concurrent.futures.ThreadPoolExecutor(max_workers) as pool:
            return dict(zip(ids, pool.map(one, ids), strict=True))

    # -- direct methods --------------------------------------------------------------------

    def invoke(
        self,
        device_id: str,
        method: str,
        payload: Any = None,
        *,
        timeout: int = 30,
        connect_timeout: int = 0,
    ) -> models.MethodResult:
        """Call a direct method and return the device's status and payload.

        Raises:
            DeviceNotOnline: the device is not connected (within `connect_timeout`).
            MethodTimeout: it did not answer within `timeout` seconds.
        """
        request = self._sdk.method(method, payload, timeout, connect_timeout)
        raw = self._call(
            f"Invoking {method!r} on {device_id!r}",
            lambda c: c.registry.protocol.devices.invoke_method(device_id, request, raw=True),
            device_id,
        )
        return models.MethodResult.model_validate(raw)

    # -- queries ---------------------------------------------------------------------------

    def validate(self, text: str) -> None:
        """Raise InvalidQuery (with line and column) unless IoT Hub would accept `text`."""
        checked_query(text, self._paths)

    def validate_condition(self, text: str) -> None:
        """Raise InvalidQuery unless IoT Hub would accept `text` as a condition (what follows
        WHERE), with the position in `text` as written."""
        checked_condition(text, self._paths)

    def explain(self, text: str) -> str:
        """The query as the parser understood it (normalised, fully parenthesised)."""
        return checked_query(text, self._paths).select.to_sql()

    def query(self, text: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every row of a query, fetched page by page as the iteration needs them.

        Raises:
            InvalidQuery: before any request, when the text is not a valid query.
        """
        checked_query(text, self._paths)
        token: str | None = None
        while True:
            body, headers = self._page(text, token, page_size)
            yield from body
            token = headers.get("x-ms-continuation")
            if not token:
                return

    def query_page(
        self, text: str, continuation: str | None = None, *, page_size: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a query (one request, one query of the hub's quota): its rows and the
        continuation token of the next page, None after the last page.

        Raises:
            InvalidQuery: before any request, when the text is not a valid query.
        """
        checked_query(text, self._paths)
        body, headers = self._page(text, continuation, page_size)
        return list(body), headers.get("x-ms-continuation") or None

    def _page(self, text: str, token: str | None, page_size: int) -> tuple[list[Any], Any]:
        def fetch(clients: Any) -> Any:
            return self._sdk.query_page(clients, text, token, page_size)

        result = self._retry.call(lambda: self._sdk.call("Querying", fetch), "Querying")
        return result if result is not None else ([], {})

    def query_twins(
        self, condition: str | None = None, *, page_size: int = 100
    ) -> Iterator[models.Twin]:
        """Twins matching a condition (all twins when None)."""
        where = f" WHERE {condition}" if condition else ""
        for row in self.query(f"SELECT * FROM devices{where}", page_size=page_size):
            yield models.Twin.from_raw(row)

    def count(self, condition: str | None = None) -> int:
        """How many devices match `condition` (all when None)."""
        if condition is not None:
            checked_condition(condition, self._paths)
        where = f" WHERE {condition}" if condition else ""
        rows = list(self.query(f"SELECT COUNT() AS n FROM devices{where}"))
        return int(rows[0]["n"]) if rows else 0

    def group_by(self, path: str, condition: str | None = None) -> dict[Any, int]:
        """`{value: count}` of a property over the devices matching `condition`.

        Devices lacking the property are counted under None.
        """
        where = f" WHERE {condition}" if condition else ""
        text = f"SELECT {path} AS value, COUNT() AS n FROM devices{where} GROUP BY {path}"
        return {row.get("value"): int(row["n"]) for row in self.query(text, page_size=1000)}

    # -- jobs ------------------------------------------------------------------------------

    def _schedule(self, job_id: str | None, body: dict[str, Any], start: datetime | None,
                  max_execution: int) -> models.Job:  # fmt: skip
        checked_condition(body["queryCondition"], self._paths)
        job_id = job_id or f"twinfleet-{uuid.uuid4().hex[:16]}"
        body = {
            **body,
            "jobId": job_id,
            "startTime": _iso(start or datetime.now(UTC)),
            "maxExecutionTimeInSeconds": max_execution,
        }
        request = self._sdk.job_request(body)
        raw = self._call(
            f"Scheduling job {job_id!r}",
            lambda c: c.jobs.protocol.jobs.create_scheduled_job(job_id, request, raw=True),
        )
        return models.Job.model_validate(raw)

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
        """Apply a twin patch to every device the condition selects, as a hub job."""
        if desired is None and tags is None:
            raise ValueError("A twin update job needs desired properties, tags, or both.")
        twin: dict[str, Any] = {"etag": "*"}
        if tags is not None:
            if self.scheme is not None:
                self.scheme.check_tags(tags)
            twin["tags"] = dict(tags)
        if desired is not None:
            twin["properties"] = {"desired": dict(desired)}
        body = {"type": "scheduleUpdateTwin", "updateTwin": twin, "queryCondition": query_condition}
        return self._schedule(job_id, body, start, max_execution)

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
        """Call a direct method on every device the condition selects, as a hub job."""
        body = {
            "type": "scheduleDeviceMethod",
            "cloudToDeviceMethod": {
                "methodName": method,
                "payload": payload,
                "responseTimeoutInSeconds": timeout,
                "connectTimeoutInSeconds": connect_timeout,
            },
            "queryCondition": query_condition,
        }
        return self._schedule(job_id, body, start, max_execution)

    def get_job(self, job_id: str) -> models.Job:
        raw = self._call(
            f"Reading job {job_id!r}",
            lambda c: c.jobs.protocol.jobs.get_scheduled_job(job_id, raw=True),
        )
        return models.Job.model_validate(raw)

    def cancel_job(self, job_id: str) -> models.Job:
        raw = self._call(
            f"Cancelling job {job_id!r}",
            lambda c: c.jobs.protocol.jobs.cancel_scheduled_job(job_id, raw=True),
        )
        return models.Job.model_validate(raw)

    def list_jobs(self, job_type: str | None = None, status: str | None = None) -> list[models.Job]:
        raw = self._call(
            "Listing jobs",
            lambda c: c.jobs.protocol.jobs.query_scheduled_jobs(job_type, status, raw=True),
        )
        return [models.Job.model_validate(item) for item in raw.get("items", [])]

    def job_results(self, job_id: str) -> list[models.DeviceJobResult]:
        """Each device's part in a job (`SELECT * FROM devices.jobs WHERE ...jobId = ...`)."""
        quoted = job_id.replace("\\", "\\\\").replace("'", "\\'")
        text = f"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '{quoted}'"
        return [
            models.DeviceJobResult.model_validate(row) for row in self.query(text, page_size=1000)
        ]

    def wait_for_job(
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
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.finished:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Job {job_id!r} is still {job.status} after {timeout:g} s.")
            time.sleep(poll)

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

    def _import_export(self, body: dict[str, Any]) -> models.ImportExportJob:
        request = self._sdk.job_properties(body)
        raw = self._call(
            f"Starting an {body['type']} job",
            lambda c: c.jobs.protocol.jobs.create_import_export_job(request, raw=True),
        )
        return models.ImportExportJob.model_validate(raw)

    def get_import_export_job(self, job_id: str) -> models.ImportExportJob:
        raw = self._call(
            f"Reading import/export job {job_id!r}",
            lambda c: c.jobs.protocol.jobs.get_import_export_job(job_id, raw=True),
        )
        return models.ImportExportJob.model_validate(raw)

    def wait_for_import_export_job(
        self, job_id: str, timeout: float, *, poll: float = 0.5
    ) -> models.ImportExportJob:
        """Poll until the import or export job completes, fails or is cancelled.

        Raises:
            TimeoutError: it has not finished within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while not (job := self.get_import_export_job(job_id)).finished:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Job {job_id!r} is still {job.status} after {timeout:g} s.")
            time.sleep(poll)
        return job

    # -- configurations --------------------------------------------------------------------

    def create_configuration(
        self,
        config_id: str,
        *,
        target_condition: str,
        desired: Mapping[str, Any],
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        metrics: Mapping[str, str] | None = None,
    ) -> models.Configuration:
        """An automatic device configuration: `desired` maps paths under `properties.desired`
        (e.g. `{"properties.desired.configuration": {...}}`) to their content; a
        `target_condition` of `*` targets every device."""
        if target_condition.strip() != "*":
            checked_condition(target_condition, self._paths)
        body = {
            "id": config_id,
            "schemaVersion": "1.0",
            "labels": dict(labels or {}),
            "content": {"deviceContent": dict(desired)},
            "targetCondition": target_condition,
            "priority": priority,
            "metrics": {"queries": dict(metrics or {})},
        }
        configuration = self._sdk.configuration(body)
        raw = self._call(
            f"Creating configuration {config_id!r}",
            lambda c: c.configurations.protocol.configuration.create_or_update(
                config_id, configuration, raw=True
            ),
        )
        return models.Configuration.from_raw(raw)

    def get_configuration(self, config_id: str) -> models.Configuration:
        raw = self._call(
            f"Reading configuration {config_id!r}",
            lambda c: c.configurations.protocol.configuration.get(config_id, raw=True),
        )
        return models.Configuration.from_raw(raw)

    def update_configuration(
        self,
        configuration: models.Configuration,
        *,
        target_condition: str | None = None,
        priority: int | None = None,
        labels: Mapping[str, str] | None = None,
        metrics: Mapping[str, str] | None = None,
    ) -> models.Configuration:
        """Change a configuration's targeting, priority, labels or metrics (content is fixed,
        as on IoT Hub). Uses the configuration's etag: stale copies get PreconditionFailed."""
        if target_condition is not None and target_condition.strip() != "*":
            checked_condition(target_condition, self._paths)
        body = {
            "id": configuration.id,
            "schemaVersion": "1.0",
            "labels": dict(labels if labels is not None else configuration.labels),
            "content": {"deviceContent": configuration.device_content},
            "targetCondition": target_condition or configuration.target_condition,
            "priority": configuration.priority if priority is None else priority,
            "metrics": {
                "queries": dict(metrics if metrics is not None else configuration.metric_queries)
            },
            "etag": configuration.etag,
        }
        model = self._sdk.configuration(body)
        raw = self._call(
            f"Updating configuration {configuration.id!r}",
            lambda c: c.configurations.protocol.configuration.create_or_update(
                configuration.id, model, _quoted(configuration.etag or "*"), raw=True
            ),
        )
        return models.Configuration.from_raw(raw)

    def delete_configuration(self, config_id: str, *, if_match: IfMatch = NOT_GIVEN) -> None:
        self._call(
            f"Deleting configuration {config_id!r}",
            lambda c: c.configurations.protocol.configuration.delete(
                config_id, _quoted(if_match) or "*", raw=True
            ),
        )

    def list_configurations(self, top: int = 100) -> list[models.Configuration]:
        raw = self._call(
            "Listing configurations",
            lambda c: c.configurations.protocol.configuration.get_configurations(top, raw=True),
        )
        return [models.Configuration.from_raw(item) for item in raw]

    def wait_until_applied(
        self, config_id: str, ratio: float, timeout: float, *, poll: float = 0.5
    ) -> models.Configuration:
        """Poll until `appliedCount / targetedCount >= ratio`.

        Raises:
            TimeoutError: the ratio was not reached within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            configuration = self.get_configuration(config_id)
            targeted = configuration.targeted_count
            if targeted and configuration.applied_count / targeted >= ratio:
                return configuration
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Configuration {config_id!r} reached {configuration.applied_count}/{targeted}"
                    f" applied, short of {ratio:.0%}, after {timeout:g} s."
                )
            time.sleep(poll)


def _without_port(host: str) -> str:
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host
