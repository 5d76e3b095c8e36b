"""The one module that touches `azure-iot-hub`: SDK clients, raw calls, error translation.

Each thread gets its own SDK clients (msrest clients are not documented as thread-safe), created
on first use. Calls go through the SDK's generated protocol operations with `raw=True`, so the
JSON the hub sent is read as it is, and no msrest model leaks out. The hub's CA is trusted per
client (`connection.verify`), never by changing `REQUESTS_CA_BUNDLE` for the whole process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import requests
from azure.iot.hub import (
    IoTHubConfigurationManager,
    IoTHubJobManager,
    IoTHubRegistryManager,
)
from azure.iot.hub.protocol import models as sdk_models
from msrest.exceptions import ClientRequestError, HttpOperationError

from twin_manager import errors
from twin_manager.usage import Usage

__all__ = ["Sdk"]

log = logging.getLogger(__name__)

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


def translate(exc: Exception, what: str, device_id: str | None = None) -> errors.HubError:
    """Our error for an SDK failure (the caller raises it `from exc`)."""
    if isinstance(exc, HttpOperationError) and exc.response is not None:
        response = exc.response
        status = response.status_code
        code = response.headers.get("iothub-errorcode", "")
        message = f"{what} failed with {status} {code}: {errors.hub_message(response)}".rstrip(": ")
        kind = _BY_CODE.get(code) or _BY_STATUS.get(status)
        if status == 429:
            retry_after = float(response.headers.get("Retry-After", "1") or 1)
            return errors.Throttled(
                message, retry_after=retry_after, status=status, error_code=code,
                device_id=device_id,
            )  # fmt: skip
        if kind is None and status >= 500:
            kind = errors.HubUnavailable
        return (kind or errors.HubError)(
            message, status=status, error_code=code, device_id=device_id
        )
    return errors.HubUnavailable(
        f"{what} failed: the hub could not be reached ({type(exc).__name__})."
    )


class Sdk:
    """Per-thread SDK clients for one hub, and raw calls through them."""

    def __init__(self, connection_string: str, ca_file: str | None, usage: Usage) -> None:
        self._connection_string = connection_string
        self._ca_file = ca_file
        self._usage = usage
        self._local = threading.local()
        fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        if not {"HostName", "SharedAccessKey"} <= fields.keys():
            raise ValueError(
                "The connection string must have HostName, SharedAccessKeyName and SharedAccessKey."
            )
        self.host_name = fields["HostName"]

    def _clients(self) -> Any:
        local = self._local
        if not hasattr(local, "registry"):
            local.registry = IoTHubRegistryManager.from_connection_string(self._connection_string)
            local.jobs = IoTHubJobManager.from_connection_string(self._connection_string)
            local.configurations = IoTHubConfigurationManager.from_connection_string(
                self._connection_string
            )
            for client in (local.registry, local.jobs, local.configurations):
                # Our RetryPolicy decides what is retried (msrest would retry 5xx, methods too).
                client.protocol.config.retry_policy.retries = 0
                if self._ca_file:
                    client.protocol.config.connection.verify = self._ca_file
        return local

    def release(self) -> None:
        """Close the calling thread's SDK clients (their HTTP sessions), if it made any."""
        local = self._local
        for name in ("registry", "jobs", "configurations"):
            client = local.__dict__.pop(name, None)
            if client is not None:
                client.protocol.close()

    def call(
        self,
        what: str,
        operation: Callable[[Any], Any],
        device_id: str | None = None,
    ) -> Any:
        """Run `operation(protocol_clients)`; returns the decoded JSON body (None when empty).

        `operation` gets an object with `registry`, `jobs` and `configurations` SDK clients and
        must return a `ClientRawResponse` (call the protocol with `raw=True`). Every request
        that got an answer is filed in the manager's `Usage` by the throttle it draws on.
        """
        try:
            raw = operation(self._clients())
        except (HttpOperationError, ClientRequestError, requests.RequestException) as exc:
            self._file(getattr(exc, "response", None))
            raise translate(exc, what, device_id) from exc
        response = raw.response
        self._file(response)
        if not response.content:
            return None
        return response.json(), response.headers

    def _file(self, response: requests.Response | None) -> None:
        if response is not None and response.request is not None:
            request = response.request
            self._usage.record(request.method or "", request.url or "", response.status_code)

    @staticmethod
    def query_page(clients: Any, text: str, token: str | None, page_size: int) -> Any:
        """One page of `POST /devices/query`, undecoded.

        The SDK's `get_twins` decodes every row as a Twin, which fails on projection and
        aggregate rows (a column named `version` holding "2.0.0", say); this sends the same
        request and leaves the JSON as it came.
        """
        operations = clients.registry.protocol.query
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8",
            "x-ms-max-item-count": str(page_size),
        }
        if token is not None:
            headers["x-ms-continuation"] = token
        body = operations._serialize.body(
            sdk_models.QuerySpecification(query=text), "QuerySpecification"
        )
        params = {"api-version": operations.api_version}
        request = operations._client.post("/devices/query", params, headers, body)
        response = operations._client.send(request, stream=False)
        if response.status_code != 200:
            raise HttpOperationError(operations._deserialize, response)
        return SimpleNamespace(response=response)

    # -- model builders (msrest models stay in this module) ---------------------------------

    @staticmethod
    def twin_patch(tags: Any, desired: Any) -> Any:
        body: dict[str, Any] = {}
        if tags is not None:
            body["tags"] = tags
        if desired is not None:
            body["properties"] = {"desired": desired}
        return sdk_models.Twin.deserialize(body)

    @staticmethod
    def device(body: dict[str, Any]) -> Any:
        return sdk_models.Device.deserialize(body)

    @staticmethod
    def method(name: str, payload: Any, response_timeout: int, connect_timeout: int) -> Any:
        return sdk_models.CloudToDeviceMethod(
            method_name=name,
            payload=payload,
            response_timeout_in_seconds=response_timeout,
            connect_timeout_in_seconds=connect_timeout,
        )

    @staticmethod
    def job_request(body: dict[str, Any]) -> Any:
        return sdk_models.JobRequest.deserialize(body)

    @staticmethod
    def job_properties(body: dict[str, Any]) -> Any:
        return sdk_models.JobProperties.deserialize(body)

    @staticmethod
    def bulk_entries(entries: list[dict[str, Any]]) -> Any:
        return [sdk_models.ExportImportDevice.deserialize(entry) for entry in entries]

    @staticmethod
    def configuration(body: dict[str, Any]) -> Any:
        return sdk_models.Configuration.deserialize(body)
