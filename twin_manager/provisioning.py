"""`ProvisioningService`: the back end's handle on a Device Provisioning Service (Azure's DPS or
`twinfleet dps serve`), through DPS's service REST API with the `provisioningserviceowner` SAS.

The back end needs it to take a device out of service for good: a disabled identity would be
created again the next time the device registers. `block(registration_id)` makes DPS refuse the
device, the way Azure documents it: a device with an individual enrollment has that enrollment
disabled; a device admitted by a symmetric-key enrollment group gets a *disabled individual
enrollment* of its own, whose key is the device's derived key. DPS looks for an individual
enrollment before any group, so the device is refused (status `disabled`) while the rest of the
group still provisions.

dps = ProvisioningService.from_dps_dir("dps")   # or (connection_string, ca_file=...)
dps.block("sensor-17")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from twin_manager import errors
from twin_manager._signing import sas_token

__all__ = ["API_VERSION", "Blocked", "ProvisioningService"]

log = logging.getLogger(__name__)

API_VERSION = "2021-10-01"
_TOKEN_TTL = 3600


@dataclass(frozen=True)
class Blocked:
    """How a registration id was blocked: `enrollment` (its own enrollment disabled), `group`
    (a disabled individual enrollment made for it within group `group_id`), or `none` (this
    service never admitted it)."""

    registration_id: str
    how: str
    group_id: str | None = None


def _derive(group_key: str, registration_id: str) -> str:
    digest = hmac.new(base64.b64decode(group_key), registration_id.encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


class ProvisioningService:
    """One provisioning service's enrollments and registration states.

    Args:
        connection_string: its service connection string (`provisioningserviceowner`).
        ca_file: a CA file to trust for its TLS (the local service's).
        timeout: seconds to wait for each request.

    Raises:
        ValueError: the connection string lacks HostName, SharedAccessKeyName or
            SharedAccessKey.
    """

    def __init__(
        self, connection_string: str, *, ca_file: str | None = None, timeout: float = 30
    ) -> None:
        fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        if not {"HostName", "SharedAccessKeyName", "SharedAccessKey"} <= fields.keys():
            raise ValueError(
                "The provisioning service's connection string must have HostName, "
                "SharedAccessKeyName and SharedAccessKey."
            )
        self.host_name = fields["HostName"]
        self._key_name = fields["SharedAccessKeyName"]
        self._key = base64.b64decode(fields["SharedAccessKey"])
        self._verify: str | bool = ca_file or True
        self._timeout = timeout

    @classmethod
    def from_dps_dir(cls, data_dir: Path | str) -> ProvisioningService:
        """The local provisioning service running in `data_dir` (`twinfleet dps serve`).

        Raises:
            HubConfigurationError: no service runs there (no readable dps.json).
        """
        path = Path(data_dir) / "dps.json"
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            return cls(info["serviceConnectionString"], ca_file=info["caCertificatePath"])
        except FileNotFoundError:
            raise errors.HubConfigurationError(
                f"No provisioning service is running in {data_dir}: {path} is missing. Start "
                f"one with `twinfleet dps serve --data-dir {data_dir} ...`.",
                path=str(path),
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise errors.HubConfigurationError(
                f"{path} is not a provisioning service's description ({exc}).", path=str(path)
            ) from None

    def _request(self, method: str, path: str, what: str, body: Any = None) -> Any:
        token = sas_token(self.host_name, self._key_name, self._key, int(time.time()) + _TOKEN_TTL)
        try:
            response = requests.request(
                method, f"https://{self.host_name}{path}", params={"api-version": API_VERSION},
                headers={"Authorization": token}, json=body, verify=self._verify,
                timeout=self._timeout,
            )  # fmt: skip
        except requests.RequestException as exc:
            raise errors.HubUnavailable(
                f"{what} failed: the provisioning service could not be reached "
                f"({type(exc).__name__})."
            ) from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("message", ""))
            except ValueError:
                detail = response.reason or ""
            message = f"{what} failed with {response.status_code}: {detail}"
            kind = errors.HubUnavailable if response.status_code >= 500 else errors.HubError
            raise kind(message, status=response.status_code)
        return response.json() if response.content else None

    @staticmethod
    def _id(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    def registration(self, registration_id: str) -> dict[str, Any] | None:
        """The registration state of `registration_id` (`assignedHub`, `deviceId`,
        `enrollmentGroupId`, ...), None when it never registered."""
        found = self._request("GET", f"/registrations/{self._id(registration_id)}",
                              f"Reading registration {registration_id!r}")  # fmt: skip
        return None if found is None else dict(found)

    def enrollment(self, registration_id: str) -> dict[str, Any] | None:
        """The individual enrollment of `registration_id`, None when it has none."""
        found = self._request("GET", f"/enrollments/{self._id(registration_id)}",
                              f"Reading enrollment {registration_id!r}")  # fmt: skip
        return None if found is None else dict(found)

    def enrollment_group(self, group_id: str) -> dict[str, Any] | None:
        found = self._request("GET", f"/enrollmentGroups/{self._id(group_id)}",
                              f"Reading enrollment group {group_id!r}")  # fmt: skip
        return None if found is None else dict(found)

    def put_enrollment(self, enrollment: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an individual enrollment (DPS's IndividualEnrollment shape)."""
        registration_id = str(enrollment["registrationId"])
        path = f"/enrollments/{self._id(registration_id)}"
        return dict(self._request("PUT", path, f"Writing enrollment {registration_id!r}",
                                  enrollment))  # fmt: skip

    def block(self, registration_id: str, *, device_id: str | None = None) -> Blocked:
        """Make the service refuse `registration_id` from now on (see the module docstring).
        Safe to repeat.

        Args:
            registration_id: the device's registration id.
            device_id: its device id in the hub, when it differs (kept in a new enrollment).

        Raises:
            HubError: the service refused or failed a request.
        """
        own = self.enrollment(registration_id)
        if own is not None:
            own["provisioningStatus"] = "disabled"
            self.put_enrollment(own)
            log.info("registration %s blocked: its enrollment is disabled", registration_id)
            return Blocked(registration_id, "enrollment")
        state = self.registration(registration_id) or {}
        group_id = state.get("enrollmentGroupId")
        group = self.enrollment_group(str(group_id)) if group_id else None
        if group is None:
            return Blocked(registration_id, "none")
        keys = group["attestation"]["symmetricKey"]
        self.put_enrollment({
            "registrationId": registration_id,
            "deviceId": device_id or state.get("deviceId") or registration_id,
            "attestation": {"type": "symmetricKey", "symmetricKey": {
                "primaryKey": _derive(keys["primaryKey"], registration_id),
                "secondaryKey": _derive(keys["secondaryKey"], registration_id)}},
            "provisioningStatus": "disabled",
        })  # fmt: skip
        log.info("registration %s blocked within group %s", registration_id, group_id)
        return Blocked(registration_id, "group", str(group_id))
