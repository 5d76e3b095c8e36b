"""The one module that touches `azure-iot-hub`: named operations on the hub's raw JSON.

Each operation (`get_twin`, `update_twin`, `query_page`, `create_job`, ...) takes and returns the
hub's documents as `twin_manager.raw` TypedDicts; no msrest model leaks out and no caller walks
one. Calls go through the SDK's generated protocol client (`azure.iot.hub.protocol`) with
`raw=True`, so the JSON the hub sent is read as it is; they are retried on transient failures
(`retrying.RetryPolicy`) and the SDK's HTTP errors are translated into `twin_manager.errors` here,
in one place.

Each thread gets a protocol client of its own (msrest clients are not documented as thread-safe),
created on first use. The hub's CA is trusted per client (`config.connection.verify`), never by
changing `REQUESTS_CA_BUNDLE` for the whole process; msrest's own retries are off, so that our
`RetryPolicy` alone decides what is retried (msrest would retry direct methods too).

Queries are the one operation not sent through a generated method: the SDK's `get_twins`
decodes every row as a Twin before it returns, which fails on projection and aggregate rows (a
column named `version` holding "2.0.0", say). `query_page` sends the same request through a
`msrest.ServiceClient` of its own, built from the public protocol configuration, and reads the
rows and the `x-ms-continuation` header as they came.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import requests
from azure.iot.hub.auth import ConnectionStringAuthentication
from azure.iot.hub.protocol import IotHubGatewayServiceAPIs
from azure.iot.hub.protocol import models as sdk_models
from azure.iot.hub.protocol.iot_hub_gateway_service_ap_is import (
    IotHubGatewayServiceAPIsConfiguration,
)
from msrest import ServiceClient
from msrest.exceptions import ClientRequestError, HttpOperationError

from twin_manager import errors, raw
from twin_manager.retrying import RetryPolicy
from twin_manager.usage import Usage, units_of

__all__ = ["Sdk", "etag_header"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_BY_CODE: dict[str, type[errors.HubError]] = {
    "DeviceNotFound": errors.DeviceNotFound,
    "DeviceNotOnline": errors.DeviceNotOnline,
    "GatewayTimeout": errors.MethodTimeout,
    "DeviceAlreadyExists": errors.Conflict,
    "PreconditionFailed": errors.PreconditionFailed,
    "IotHubUnauthorizedAccess": errors.Unauthorized,
}
_BY_STATUS: dict[int, type[errors.HubError]] = {
    401: errors.Unauthorized,
    409: errors.Conflict,
    412: errors.PreconditionFailed,
    504: errors.MethodTimeout,
}


def _refused(response: requests.Response, what: str, device_id: str | None) -> errors.HubError:
    """Our error for a response the hub answered with an error status."""
    status = response.status_code
    code = response.headers.get("iothub-errorcode", "")
    message = f"{what} failed with {status} {code}: {errors.hub_message(response)}".rstrip(": ")
    if status == 429:
        retry_after = float(response.headers.get("Retry-After", "1") or 1)
        return errors.Throttled(
            message, retry_after=retry_after, status=status, error_code=code, device_id=device_id
        )
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if kind is None and status >= 500:
        kind = errors.HubUnavailable
    return (kind or errors.HubError)(message, status=status, error_code=code, device_id=device_id)


def translate(exc: Exception, what: str, device_id: str | None = None) -> errors.HubError:
    """Our error for an SDK failure (the caller raises it `from exc`)."""
    if isinstance(exc, HttpOperationError) and exc.response is not None:
        return _refused(exc.response, what, device_id)
    return errors.HubUnavailable(
        f"{what} failed: the hub could not be reached ({type(exc).__name__})."
    )


def etag_header(etag: str | None) -> str:
    """An `If-Match` value: the etag quoted as HTTP wants it, or `*` (any) when None."""
    if etag is None or etag == "*" or etag.startswith('"'):
        return etag or "*"
    return f'"{etag}"'


@dataclass(frozen=True)
class _Clients:
    """One thread's SDK clients: the generated protocol client, and one for raw queries."""

    protocol: Any  # IotHubGatewayServiceAPIs
    queries: Any  # msrest.ServiceClient


Send = Callable[[_Clients], requests.Response]


class Sdk:
    """Named operations on one hub, each one retried and translated.

    Args:
        connection_string: the service connection string.
        ca_file: a CA file to trust for this hub's TLS (this client only).
        retry: the retry policy for transient failures.
        usage: where every request that got an answer is filed, by the throttle it draws on.
    """

    def __init__(
        self, connection_string: str, ca_file: str | None, retry: RetryPolicy, usage: Usage
    ) -> None:
        self._connection_string = connection_string
        self._ca_file = ca_file
        self._retry = retry
        self._usage = usage
        self._local = threading.local()
        fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        if not {"HostName", "SharedAccessKey"} <= fields.keys():
            raise ValueError(
                "The connection string must have HostName, SharedAccessKeyName and SharedAccessKey."
            )
        self.host_name = fields["HostName"]

    def _clients(self) -> _Clients:
        clients: _Clients | None = getattr(self._local, "clients", None)
        if clients is None:
            auth = ConnectionStringAuthentication(self._connection_string)
            base_url = f"https://{self.host_name}"
            protocol = IotHubGatewayServiceAPIs(auth, base_url)
            query_config = IotHubGatewayServiceAPIsConfiguration(auth, base_url)
            for config in (protocol.config, query_config):
                config.retry_policy.retries = 0
                if self._ca_file:
                    config.connection.verify = self._ca_file
            clients = _Clients(protocol, ServiceClient(None, query_config))
            self._local.clients = clients
        return clients

    def release(self) -> None:
        """Close the calling thread's SDK clients (their HTTP sessions), if it made any."""
        clients: _Clients | None = self._local.__dict__.pop("clients", None)
        if clients is not None:
            clients.protocol.close()
            clients.queries.close()

    def call(self, what: str, send: Send, device_id: str | None = None) -> Any:
        """One attempt: run `send` on this thread's clients; the decoded JSON body, or None
        when the body is empty. Raises our errors, never the SDK's (`send` raises the SDK's
        HttpOperationError for a status its operation does not expect). Every request that
        got an answer is filed in `usage` by the throttle it draws on."""
        try:
            response = send(self._clients())
        except (HttpOperationError, ClientRequestError, requests.RequestException) as exc:
            self._file(getattr(exc, "response", None))
            raise translate(exc, what, device_id) from exc
        self._file(response)
        return response.json() if response.content else None

    def _file(self, response: requests.Response | None) -> None:
        if response is not None and response.request is not None:
            request = response.request
            method, url = request.method or "", request.url or ""
            body = request.body if isinstance(request.body, bytes | str) else None
            units = units_of(method, url, body)
            self._usage.record(method, url, response.status_code, units)

    def _json(self, kind: type[T], what: str, send: Send, device_id: str | None = None) -> T:
        """`send` retried on transient failures; the JSON it answered, taken as a `kind`."""
        return cast(T, self._retry.call(lambda: self.call(what, send, device_id), what))

    # -- device identities -----------------------------------------------------------------

    def put_device(self, device: raw.RawDevice, if_match: str | None = None) -> raw.RawDevice:
        """Create a device identity, or replace it when `if_match` is given."""
        device_id = device["deviceId"]
        model = sdk_models.Device.deserialize(device)
        etag = None if if_match is None else etag_header(if_match)
        return self._json(
            raw.RawDevice,
            f"{'Creating' if etag is None else 'Updating'} device {device_id!r}",
            lambda c: (
                c.protocol.devices.create_or_update_identity(
                    device_id, model, etag, raw=True
                ).response
            ),
            device_id,
        )

    def get_device(self, device_id: str) -> raw.RawDevice:
        return self._json(
            raw.RawDevice,
            f"Reading device {device_id!r}",
            lambda c: c.protocol.devices.get_identity(device_id, raw=True).response,
            device_id,
        )

    def list_devices(self, top: int) -> list[raw.RawDevice]:
        return self._json(
            list[raw.RawDevice],
            "Listing devices",
            lambda c: c.protocol.devices.get_devices(top, raw=True).response,
        )

    def bulk_registry(self, entries: list[dict[str, Any]]) -> raw.RawBulkResult:
        """One `POST /devices` of up to 100 `ExportImportDevice` entries, and its result (sent
        with a 400 when some entries failed; no body means all succeeded)."""
        devices = [sdk_models.ExportImportDevice.deserialize(entry) for entry in entries]
        result = self._json(
            dict,
            f"Bulk registry operation on {len(entries)} devices",
            lambda c: c.protocol.bulk_registry.update_registry(devices, raw=True).response,
        )
        return cast(raw.RawBulkResult, result or {"isSuccessful": True})

    def delete_device(self, device_id: str, if_match: str | None) -> None:
        etag = etag_header(if_match)
        self._json(
            type(None),
            f"Deleting device {device_id!r}",
            lambda c: c.protocol.devices.delete_identity(device_id, etag, raw=True).response,
            device_id,
        )

    # -- twins -----------------------------------------------------------------------------

    def get_twin(self, device_id: str) -> raw.RawTwin:
        return self._json(
            raw.RawTwin,
            f"Reading the twin of {device_id!r}",
            lambda c: c.protocol.devices.get_twin(device_id, raw=True).response,
            device_id,
        )

    def update_twin(
        self, device_id: str, patch: raw.RawTwinPatch, if_match: str | None
    ) -> raw.RawTwin:
        """Merge-patch tags and desired properties."""
        model, etag = sdk_models.Twin.deserialize(patch), etag_header(if_match)
        return self._json(
            raw.RawTwin,
            f"Updating the twin of {device_id!r}",
            lambda c: c.protocol.devices.update_twin(device_id, model, etag, raw=True).response,
            device_id,
        )

    def replace_twin(
        self, device_id: str, twin: raw.RawTwinPatch, if_match: str | None
    ) -> raw.RawTwin:
        """Replace tags and desired properties whole."""
        model, etag = sdk_models.Twin.deserialize(twin), etag_header(if_match)
        return self._json(
            raw.RawTwin,
            f"Replacing the twin of {device_id!r}",
            lambda c: c.protocol.devices.replace_twin(device_id, model, etag, raw=True).response,
            device_id,
        )

    # -- direct methods --------------------------------------------------------------------

    def invoke_method(self, device_id: str, request: raw.RawMethodRequest) -> raw.RawMethodResult:
        model = sdk_models.CloudToDeviceMethod.deserialize(request)
        return self._json(
            raw.RawMethodResult,
            f"Invoking {request['methodName']!r} on {device_id!r}",
            lambda c: c.protocol.devices.invoke_method(device_id, model, raw=True).response,
            device_id,
        )

    # -- queries ---------------------------------------------------------------------------

    def query_page(self, text: str, continuation: str | None, page_size: int) -> raw.RawQueryPage:
        """One page of `POST /devices/query`, rows undecoded (see the module docstring)."""
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8",
            "x-ms-max-item-count": str(page_size),
        }
        if continuation is not None:
            headers["x-ms-continuation"] = continuation
        found: dict[str, str | None] = {}

        def send(clients: _Clients) -> requests.Response:
            params = {"api-version": clients.protocol.query.api_version}
            request = clients.queries.post("/devices/query", params, headers, {"query": text})
            response: requests.Response = clients.queries.send(request, stream=False)
            if response.status_code != 200:
                self._file(response)
                raise _refused(response, "Querying", None)
            found["continuation"] = response.headers.get("x-ms-continuation") or None
            return response

        rows = self._json(list[dict[str, Any]], "Querying", send)
        return {"items": list(rows or []), "continuation": found.get("continuation")}

    # -- jobs ------------------------------------------------------------------------------

    def create_job(self, job: raw.RawJobRequest) -> raw.RawJob:
        job_id, model = job["jobId"], sdk_models.JobRequest.deserialize(job)
        return self._json(
            raw.RawJob,
            f"Scheduling job {job_id!r}",
            lambda c: c.protocol.jobs.create_scheduled_job(job_id, model, raw=True).response,
        )

    def get_job(self, job_id: str) -> raw.RawJob:
        return self._json(
            raw.RawJob,
            f"Reading job {job_id!r}",
            lambda c: c.protocol.jobs.get_scheduled_job(job_id, raw=True).response,
        )

    def cancel_job(self, job_id: str) -> raw.RawJob:
        return self._json(
            raw.RawJob,
            f"Cancelling job {job_id!r}",
            lambda c: c.protocol.jobs.cancel_scheduled_job(job_id, raw=True).response,
        )

    def list_jobs(self, job_type: str | None, status: str | None) -> list[raw.RawJob]:
        found = self._json(
            raw.RawJobList,
            "Listing jobs",
            lambda c: c.protocol.jobs.query_scheduled_jobs(job_type, status, raw=True).response,
        )
        return (found or {}).get("items", [])

    def create_import_export_job(self, job: raw.RawImportExportRequest) -> raw.RawImportExportJob:
        model = sdk_models.JobProperties.deserialize(job)
        return self._json(
            raw.RawImportExportJob,
            f"Starting an {job['type']} job",
            lambda c: c.protocol.jobs.create_import_export_job(model, raw=True).response,
        )

    def get_import_export_job(self, job_id: str) -> raw.RawImportExportJob:
        return self._json(
            raw.RawImportExportJob,
            f"Reading import/export job {job_id!r}",
            lambda c: c.protocol.jobs.get_import_export_job(job_id, raw=True).response,
        )

    # -- configurations --------------------------------------------------------------------

    def put_configuration(
        self, configuration: raw.RawConfiguration, if_match: str | None = None
    ) -> raw.RawConfiguration:
        """Create a configuration, or replace it when `if_match` is given."""
        config_id = configuration["id"]
        model = sdk_models.Configuration.deserialize(configuration)
        etag = None if if_match is None else etag_header(if_match)
        return self._json(
            raw.RawConfiguration,
            f"{'Creating' if etag is None else 'Updating'} configuration {config_id!r}",
            lambda c: (
                c.protocol.configuration.create_or_update(config_id, model, etag, raw=True).response
            ),
        )

    def get_configuration(self, config_id: str) -> raw.RawConfiguration:
        return self._json(
            raw.RawConfiguration,
            f"Reading configuration {config_id!r}",
            lambda c: c.protocol.configuration.get(config_id, raw=True).response,
        )

    def delete_configuration(self, config_id: str, if_match: str | None) -> None:
        etag = etag_header(if_match)
        self._json(
            type(None),
            f"Deleting configuration {config_id!r}",
            lambda c: c.protocol.configuration.delete(config_id, etag, raw=True).response,
        )

    def list_configurations(self, top: int) -> list[raw.RawConfiguration]:
        return self._json(
            list[raw.RawConfiguration],
            "Listing configurations",
            lambda c: c.protocol.configuration.get_configurations(top, raw=True).response,
        )
