"""`ArtifactStore`: firmware images and other files devices download, on the local hub.

The local hub serves artifacts over its service endpoint (`/artifacts/...`, the owner key's SAS
token to upload, list, sign and delete) and lets devices download them with a time-limited signed
URL, as Blob Storage does with a SAS URL. Any process with the service connection string can use
it, not only the hub's own. Azure IoT Hub has no such endpoint: there, images go to Blob Storage
and campaigns take the blob's SAS URL.

store = ArtifactStore(connection_string, ca_file=ca)
image = store.upload(Path("fw-2.0.0.bin"), ttl=7 * 86400)
print(image.url, image.sha256)
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from twin_manager import errors
from twin_manager._signing import sas_token

__all__ = ["Artifact", "ArtifactStore"]

log = logging.getLogger(__name__)

_TOKEN_TTL = 3600


@dataclass(frozen=True)
class Artifact:
    """One stored artifact; `url` and `expires_at` are set when a download URL was signed."""

    name: str
    size: int
    sha256: str
    modified: str | None = None
    url: str | None = None
    expires_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The artifact as JSON, camelCase as the hub writes it (`expiresAt`)."""
        return {
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "modified": self.modified,
            "url": self.url,
            "expiresAt": self.expires_at,
        }

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Artifact:
        return cls(
            name=str(body["name"]),
            size=int(body["size"]),
            sha256=str(body["sha256"]),
            modified=body.get("modified"),
            url=body.get("url"),
            expires_at=body.get("expiresAt"),
        )


class ArtifactStore:
    """The artifacts of one local hub.

    Args:
        connection_string: the hub's service connection string (the `iothubowner` policy's).
        ca_file: a CA file to trust for the hub's TLS (the local hub's).
        timeout: seconds to wait for the hub on each request.

    Raises:
        ValueError: the connection string lacks HostName, SharedAccessKeyName or SharedAccessKey.
    """

    def __init__(
        self, connection_string: str, *, ca_file: str | None = None, timeout: float = 120
    ) -> None:
        fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        if not {"HostName", "SharedAccessKeyName", "SharedAccessKey"} <= fields.keys():
            raise ValueError(
                "The connection string must have HostName, SharedAccessKeyName and SharedAccessKey."
            )
        self.host_name = fields["HostName"]
        self._key_name = fields["SharedAccessKeyName"]
        self._key = base64.b64decode(fields["SharedAccessKey"])
        self._verify: str | bool = ca_file or True
        self._timeout = timeout

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        if self.host_name.endswith(".azure-devices.net"):
            raise errors.HubError(
                f"{what}: Azure IoT Hub stores no artifacts; upload the image to Blob Storage and "
                "give the campaign its SAS URL (--url and --sha256)."
            )
        token = sas_token(self.host_name, self._key_name, self._key, int(time.time()) + _TOKEN_TTL)
        try:
            response = requests.request(
                method, f"https://{self.host_name}{path}", headers={"Authorization": token},
                verify=self._verify, timeout=self._timeout, **kwargs,
            )  # fmt: skip
        except requests.RequestException as exc:
            raise errors.HubUnavailable(
                f"{what} failed: the hub could not be reached ({type(exc).__name__})."
            ) from exc
        if response.status_code >= 400:
            message = f"{what} failed with {response.status_code}: {errors.hub_message(response)}"
            if response.status_code == 404:
                raise errors.ArtifactNotFound(message, status=404)
            if response.status_code == 401:
                raise errors.Unauthorized(message, status=401)
            kind = errors.HubUnavailable if response.status_code >= 500 else errors.HubError
            raise kind(message, status=response.status_code)
        return response

    @staticmethod
    def _path(name: str, suffix: str = "") -> str:
        return f"/artifacts/{urllib.parse.quote(name, safe='')}{suffix}"

    def upload(self, source: Path, *, name: str | None = None, ttl: int = 24 * 3600) -> Artifact:
        """Upload a file (streamed, never read whole into memory) under `name` (the file's name
        by default); returns its size, SHA-256 and a download URL valid `ttl` seconds.

        Raises:
            OSError: the file cannot be read.
            HubError: the hub refused the name or the ttl, or failed.
        """
        target = name or source.name
        with source.open("rb") as body:
            response = self._request(
                "PUT", self._path(target), f"uploading {target!r}", data=body,
                params={"ttl": str(ttl)},
            )  # fmt: skip
        log.info("uploaded artifact %s", target)
        return Artifact.from_wire(response.json())

    def list(self) -> list[Artifact]:
        """Every stored artifact, by name."""
        response = self._request("GET", "/artifacts", "listing artifacts")
        return [Artifact.from_wire(item) for item in response.json()]

    def url(self, name: str, *, ttl: int = 24 * 3600) -> Artifact:
        """A fresh download URL for a stored artifact, valid `ttl` seconds.

        Raises:
            ArtifactNotFound: no artifact has that name.
        """
        response = self._request(
            "POST", self._path(name, "/url"), f"signing {name!r}", params={"ttl": str(ttl)}
        )
        return Artifact.from_wire(response.json())

    def upload_url(self, name: str, *, ttl: int = 3600) -> str:
        """A signed URL with which a device uploads `name` (a plain `PUT` with
        `x-ms-blob-type: BlockBlob`, as to a Blob SAS URL), valid `ttl` seconds. It is a secret:
        hand it to the device by a direct method, never through the twin.

        Raises:
            HubError: the name or the ttl is refused.
        """
        response = self._request(
            "POST", self._path(name, "/upload-url"), f"signing an upload of {name!r}",
            params={"ttl": str(ttl)},
        )  # fmt: skip
        return str(response.json()["url"])

    def download(self, name: str, destination: Path) -> Artifact:
        """Stream an artifact to `destination` (replaced atomically); returns its facts.

        Raises:
            ArtifactNotFound: no artifact has that name.
        """
        response = self._request("GET", self._path(name), f"downloading {name!r}", stream=True)
        partial = destination.with_name(f".{destination.name}.part")
        digest = hashlib.sha256()
        size = 0
        with response, partial.open("wb") as out:
            for chunk in response.iter_content(256 * 1024):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        partial.replace(destination)
        return Artifact(name=name, size=size, sha256=digest.hexdigest())

    def delete(self, name: str) -> None:
        """Remove an artifact; URLs signed for it stop working.

        Raises:
            ArtifactNotFound: no artifact has that name.
        """
        self._request("DELETE", self._path(name), f"deleting {name!r}")
        log.info("deleted artifact %s", name)

    # -- blob containers (what import/export jobs read and write) ----------------------------

    def container_url(self, container: str, *, permissions: str = "rw", ttl: int = 3600) -> str:
        """A signed URL of the blob container `container` (`r`, `w` or `rw`), valid `ttl`
        seconds: what an import/export job's `inputBlobContainerUri` and
        `outputBlobContainerUri` take. It is a secret: anyone holding it can use it.

        Raises:
            HubError: the container name, the permissions or the ttl is refused.
        """
        response = self._request(
            "POST", self._path(container, "/container-url"), f"signing container {container!r}",
            params={"ttl": str(ttl), "sp": permissions},
        )  # fmt: skip
        return str(response.json()["url"])

    def put_blob(self, container: str, name: str, data: bytes) -> None:
        """Store `data` as blob `name` of `container` (made if new), replacing any."""
        path = f"{self._path(container)}/{urllib.parse.quote(name, safe='')}"
        self._request("PUT", path, f"uploading {container}/{name}", data=data)

    def get_blob(self, container: str, name: str) -> bytes:
        """Blob `name` of `container`.

        Raises:
            ArtifactNotFound: there is no such blob.
        """
        path = f"{self._path(container)}/{urllib.parse.quote(name, safe='')}"
        return self._request("GET", path, f"downloading {container}/{name}").content

    def delete_blob(self, container: str, name: str) -> None:
        """Remove blob `name` of `container`.

        Raises:
            ArtifactNotFound: there is no such blob.
        """
        path = f"{self._path(container)}/{urllib.parse.quote(name, safe='')}"
        self._request("DELETE", path, f"deleting {container}/{name}")
