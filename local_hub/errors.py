"""Errors the hub answers with, in IoT Hub's codes and shapes.

The tree::

    HubError (status, error_code)
    ├── BadRequest              400  the request is malformed or breaks a limit; nothing changed
    ├── Unauthorized            401  missing, malformed, expired or wrongly signed SAS token
    ├── DeviceNotFound          404  no such device identity
    ├── DeviceNotOnline         404  a direct method's device is not connected
    ├── NotFound                404  no such job, configuration or artifact
    ├── Conflict                409  the identity (or job, or configuration) already exists
    ├── RequestTimeout          408  the request body arrived too slowly
    ├── PreconditionFailed      412  the If-Match etag is stale
    ├── Throttled               429  too many requests (a quota of the hub's tier, or injected)
    │   └── TooManyActiveJobs   429  the tier's limit of concurrent jobs is reached
    ├── ServerError             500/503  an injected or unexpected failure
    └── GatewayTimeout          504  the device did not answer a direct method in time

Each error carries IoT Hub's six-digit error code and a sentence for humans. The REST endpoint
renders them as IoT Hub does; the MQTT endpoint answers twin requests with the status.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Conflict",
    "DeviceNotFound",
    "DeviceNotOnline",
    "GatewayTimeout",
    "HubError",
    "NotFound",
    "PreconditionFailed",
    "RequestTimeout",
    "ServerError",
    "Throttled",
    "TooManyActiveJobs",
    "Unauthorized",
]


class HubError(Exception):
    """An error the hub reports to a client.

    Attributes:
        status: the HTTP status (or MQTT twin response status).
        error_code: IoT Hub's numeric error code, e.g. "404001".
        code_name: IoT Hub's error code name, e.g. "DeviceNotFound".
        message: a sentence naming the problem.
    """

    status = 500
    error_code = "500001"
    code_name = "ServerError"

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code


class BadRequest(HubError):
    status, error_code, code_name = 400, "400004", "ArgumentInvalid"


class Unauthorized(HubError):
    status, error_code, code_name = 401, "401002", "IotHubUnauthorizedAccess"


class DeviceNotFound(HubError):
    status, error_code, code_name = 404, "404001", "DeviceNotFound"


class DeviceNotOnline(HubError):
    status, error_code, code_name = 404, "404103", "DeviceNotOnline"


class NotFound(HubError):
    status, error_code, code_name = 404, "404000", "NotFound"


class Conflict(HubError):
    status, error_code, code_name = 409, "409001", "DeviceAlreadyExists"


class RequestTimeout(HubError):
    status, error_code, code_name = 408, "408001", "RequestTimeout"


class PreconditionFailed(HubError):
    status, error_code, code_name = 412, "412002", "PreconditionFailed"


class Throttled(HubError):
    status, error_code, code_name = 429, "429001", "ThrottlingException"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyActiveJobs(Throttled):
    error_code, code_name = "429004", "ThrottlingMaxActiveJobCountExceeded"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=60.0)


class ServerError(HubError):
    status, error_code, code_name = 500, "500001", "ServerError"

    def __init__(self, message: str, *, status: int = 500) -> None:
        super().__init__(message, error_code="503001" if status == 503 else "500001")
        self.status = status
        if status == 503:
            self.code_name = "ServiceUnavailable"


class GatewayTimeout(HubError):
    status, error_code, code_name = 504, "504101", "GatewayTimeout"
