"""Blob containers in the artifacts store: names, paths and signed container URLs.

IoT Hub's import and export jobs name their input and output by a Blob Storage *container* SAS
URI (`https://account.blob.core.windows.net/container?sv=...&sig=...`); a blob in it is reached
by putting its name after the container's path and keeping the query. The local hub's artifacts
store stands in for Blob Storage the same way (the routes are in `rest/containers.py`): a
container is a directory beside the flat artifacts, and its signed URL is
`https://<hub>/artifacts/{container}?se=<expiry>&sp=<r|w|rw>&sig=<signature>`. The signature
covers the container (the text `artifacts/{container}/`, which no flat artifact's name can be,
so neither kind of URL opens the other), the expiry and the permissions, so a URL signed for
reading cannot write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from pathlib import Path
from typing import Any

from local_hub import errors

__all__ = [
    "NAME",
    "PERMISSIONS",
    "blob_path",
    "container_dir",
    "container_url",
    "resolve_container_url",
    "sign",
    "verify_container_signature",
]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
PERMISSIONS = ("r", "w", "rw")


def sign(key: bytes, container: str, expiry: int, permissions: str) -> str:
    """The signature of a URL for `container` valid until `expiry` with `permissions`."""
    text = f"artifacts/{container}/\n{expiry}\n{permissions}"
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _check_name(kind: str, name: str) -> None:
    if not NAME.match(name) or ".." in name:
        raise errors.BadRequest(
            f"{kind} name {name[:80]!r} is invalid: use letters, digits, '.', '_' and '-'."
        )


def container_dir(root: Path, container: str) -> Path:
    """The directory of `container` under the artifacts directory `root`.

    Raises:
        BadRequest: the name is invalid, or a flat artifact already has it.
    """
    _check_name("Container", container)
    path = root / container
    if path.exists() and not path.is_dir():
        raise errors.BadRequest(
            f"{container!r} is an artifact, not a container; choose another container name."
        )
    return path


def blob_path(root: Path, container: str, blob: str) -> Path:
    """Where blob `blob` of `container` is kept."""
    _check_name("Blob", blob)
    return container_dir(root, container) / blob


def container_url(host_name: str, key: bytes, container: str, expiry: int, permissions: str) -> str:
    """A signed URL for the container `container` on the hub at `host_name`."""
    sig = sign(key, container, expiry, permissions)
    quoted = urllib.parse.quote(container)
    return f"https://{host_name}/artifacts/{quoted}?se={expiry}&sp={permissions}&sig={sig}"


def verify_container_signature(
    keys: list[bytes], container: str, query: Any, now: float, needed: str
) -> None:
    """Raises Unauthorized unless `query` (`se`, `sp`, `sig`) signs `container` with the
    permission `needed` (`r` or `w`) until a future time."""
    expiry, permissions, sig = (str(query.get(k, "")) for k in ("se", "sp", "sig"))
    if not (expiry.isascii() and expiry.isdigit()) or int(expiry) <= now:
        raise errors.Unauthorized("The container URL has expired; ask for a new one.")
    if permissions not in PERMISSIONS or needed not in permissions:
        raise errors.Unauthorized(
            f"The container URL does not allow {'reading' if needed == 'r' else 'writing'}; "
            f"sign one with sp={needed} or sp=rw."
        )
    if not sig.isascii():
        raise errors.Unauthorized("The container URL's signature is not valid.")
    for key in keys:
        expected = sign(key, container, int(expiry), permissions)
        if hmac.compare_digest(expected, sig):
            return
    raise errors.Unauthorized("The container URL's signature is not valid.")


def resolve_container_url(
    url: Any, *, field: str, host_name: str, keys: list[bytes], now: float, needed: str
) -> str:
    """The container a job's `field` (a container URL) names on this hub.

    Raises:
        BadRequest: it is not a signed container URL of this hub's artifacts store, or its
            signature, expiry or permissions do not allow `needed`.
    """
    if not isinstance(url, str) or not url:
        raise errors.BadRequest(
            f"{field} is required: a signed container URL of the hub's artifacts store "
            "(POST /artifacts/<container>/container-url makes one)."
        )
    parts = urllib.parse.urlsplit(url)
    segments = parts.path.strip("/").split("/")
    if parts.scheme != "https" or parts.netloc != host_name:
        raise errors.BadRequest(
            f"{field} must point at this hub's artifacts store (https://{host_name}/artifacts/"
            "<container>?...); the local hub reads and writes no other storage."
        )
    if len(segments) != 2 or segments[0] != "artifacts":
        raise errors.BadRequest(f"{field} must be a container URL: https://{host_name}/artifacts/"
                                "<container>?se=...&sp=...&sig=...")  # fmt: skip
    container = urllib.parse.unquote(segments[1])
    _check_name("Container", container)
    query = dict(urllib.parse.parse_qsl(parts.query))
    try:
        verify_container_signature(keys, container, query, now, needed)
    except errors.Unauthorized as exc:
        raise errors.BadRequest(f"{field}: {exc.message}") from None
    return container
