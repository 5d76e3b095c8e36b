"""Artifacts: firmware images and other files devices download, as Blob Storage serves them.

The owner uploads with `PUT /artifacts/<name>` (streamed to disk and hashed as it arrives). Devices
download with a time-limited signed URL (`?se=<expiry>&sig=<signature>`), the same idea as a Blob
SAS URL, so no device ever holds the owner key. Downloads honour HTTP Range, so an interrupted
firmware download resumes where it stopped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import urllib.parse
import uuid
from pathlib import Path

from aiohttp import web

from local_hub import errors
from local_hub.rest.context import json_response, of

__all__ = ["ARTIFACT_NAME", "routes", "sign_artifact", "verify_artifact_signature"]

routes = web.RouteTableDef()

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_CHUNK = 256 * 1024


def sign_artifact(key: bytes, name: str, expiry: int) -> str:
    """The signature of a download URL for `name` valid until `expiry` (Unix seconds)."""
    digest = hmac.new(key, f"artifacts/{name}\n{expiry}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify_artifact_signature(
    keys: list[bytes], name: str, expiry: str, sig: str, now: float
) -> None:
    """Raises Unauthorized unless `sig` signs `name` until a future `expiry`."""
    if not (expiry.isascii() and expiry.isdigit()) or int(expiry) <= now:
        raise errors.Unauthorized("The download URL has expired; ask for a new one.")
    if not sig.isascii():  # compare_digest takes ASCII text only
        raise errors.Unauthorized("The download URL's signature is not valid.")
    for key in keys:
        if hmac.compare_digest(sign_artifact(key, name, int(expiry)), sig):
            return
    raise errors.Unauthorized("The download URL's signature is not valid.")


def _path(root: Path, name: str) -> Path:
    if not ARTIFACT_NAME.match(name) or name.startswith(".") or ".." in name:
        raise errors.BadRequest(
            f"Artifact name {name!r} is invalid: use letters, digits, '.', '_' and '-'."
        )
    return root / name


@routes.put("/artifacts/{name}")
async def upload(request: web.Request) -> web.Response:
    ctx = of(request)
    name = request.match_info["name"]
    target = _path(ctx.artifacts_dir, name)
    ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{name}.{uuid.uuid4().hex}.upload")  # concurrent uploads
    digest = hashlib.sha256()
    size = 0
    try:
        with partial.open("wb") as out:
            async for chunk in request.content.iter_chunked(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    quoted = urllib.parse.quote(name)
    return json_response(
        {"name": name, "size": size, "sha256": digest.hexdigest(), "path": f"/artifacts/{quoted}"},
        status=201,
    )


@routes.get("/artifacts/{name}")
async def download(request: web.Request) -> web.StreamResponse:
    ctx = of(request)
    name = request.match_info["name"]
    target = _path(ctx.artifacts_dir, name)
    if not target.is_file():
        raise errors.NotFound(f"No artifact named {name!r}.")
    return web.FileResponse(target, chunk_size=_CHUNK)
