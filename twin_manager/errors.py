"""What twin_manager raises, named for what the caller does next.

The tree::

    TwinManagerError                  anything twin_manager raises on purpose
    ├── InvalidQuery                  the query text is wrong (found locally, before any call)
    ├── InvalidTags (path)            a tag write the fleet's scheme does not allow (fix the tag)
    ├── InvalidScheme (source)        the fleet's scheme cannot be loaded or understood
    ├── HubConfigurationError (path)  a hub directory, CA or settings file cannot be used
    └── HubError (status, error_code) the hub refused or failed a request
        ├── Unauthorized              the connection string's key or policy is wrong
        ├── DeviceNotFound            no such device (check the id, or create it first)
        ├── ArtifactNotFound          no such artifact on the hub (upload it first)
        ├── DeviceNotOnline           the device is not connected (retry later, or schedule a job)
        ├── MethodTimeout             the device did not answer the direct method in time
        ├── Conflict                  it already exists
        ├── PreconditionFailed        the etag is stale (read again, then retry)
        ├── Throttled (retry_after)   too many requests, even after retries
        └── HubUnavailable            the hub could not be reached or kept failing (5xx)

Messages never contain keys, tokens or connection strings.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "ArtifactNotFound",
    "Conflict",
    "DeviceNotFound",
    "DeviceNotOnline",
    "HubConfigurationError",
    "HubError",
    "HubUnavailable",
    "InvalidQuery",
    "InvalidScheme",
    "InvalidTags",
    "MethodTimeout",
    "PreconditionFailed",
    "Throttled",
    "TwinManagerError",
    "Unauthorized",
    "hub_message",
]


def hub_message(response: Any) -> str:
    """The human sentence in an IoT Hub error body (a `requests.Response`), or its reason."""
    try:
        body = response.json()
        message = str(body.get("Message", ""))
    except (ValueError, AttributeError):
        return str(response.reason or "")
    _, _, detail = message.partition(";")
    try:
        return str(json.loads(detail).get("message", detail))
    except (ValueError, AttributeError):
        return detail or message


class TwinManagerError(Exception):
    """The root of twin_manager's errors."""


class InvalidQuery(TwinManagerError, ValueError):
    """A query or condition is not valid; `line` and `column` say where (1-based)."""

    def __init__(self, message: str, *, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class InvalidTags(TwinManagerError, ValueError):
    """A tag write the fleet's scheme does not allow (found locally, before any call).

    Attributes:
        path: the tag at fault, e.g. `tags.location.floor`.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class InvalidScheme(TwinManagerError, ValueError):
    """A fleet scheme cannot be loaded, or is not one (see `twin_manager.schemes`).

    Attributes:
        source: the module attribute or file it was loaded from.
    """

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source


class HubConfigurationError(TwinManagerError, OSError):
    """A local hub's directory, a CA certificate or a settings file cannot be used.

    Attributes:
        path: the file at fault.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


class HubError(TwinManagerError):
    """The hub answered with an error.

    Attributes:
        status: the HTTP status (0 when no answer came).
        error_code: IoT Hub's error code name (e.g. "DeviceNotFound"), or "" when unknown.
        device_id: the device concerned, when there is one.
    """

    def __init__(
        self, message: str, *, status: int = 0, error_code: str = "", device_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.device_id = device_id


class Unauthorized(HubError):
    """The hub refused the credentials."""


class DeviceNotFound(HubError):
    """No device with that id is registered."""


class ArtifactNotFound(HubError):
    """No artifact with that name is stored on the hub."""


class DeviceNotOnline(HubError):
    """The device is not connected (a direct method cannot reach it)."""


class MethodTimeout(HubError):
    """The device did not answer a direct method within its response timeout."""


class Conflict(HubError):
    """The device (or job, or configuration) already exists."""


class PreconditionFailed(HubError):
    """The etag given with `if_match` is stale: someone changed the twin since it was read."""


class Throttled(HubError):
    """The hub kept answering 429; `retry_after` is its last hint, in seconds."""

    def __init__(self, message: str, *, retry_after: float, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class HubUnavailable(HubError):
    """The hub could not be reached, or kept failing with 5xx, through every retry."""
