"""Artifacts: firmware images and other files devices download, as Blob Storage serves them.

The owner uploads with `PUT /artifacts/<name>` (streamed to disk and hashed as it arrives). Devices
download with a time-limited signed URL (`?se=<expiry>&sig=<signature>`), the same idea as a Blob
SAS URL, so no device ever holds the owner key. Downloads honour HTTP Range, so an interrupted
firmware download resumes where it stopped.

With the owner key (any process, not only the hub's own):

- `PUT /artifacts/<name>[?ttl=<seconds>]`: upload; answers `name`, `size`, `sha256`, `path` and a
  signed download `url` valid `ttl` seconds (a day by default) with its `expiresAt`;
- `GET /artifacts`: every artifact's `name`, `size`, `sha256` and `modified` time;
- `POST /artifacts/<name>/url[?ttl=<seconds>]`: a fresh signed download URL for a stored artifact;
- `POST /artifacts/<name>/upload-url[?ttl=<seconds>]`: a signed *write* URL (`&sp=w`), with which
  a device uploads the file with a plain `PUT` carrying `x-ms-blob-type: BlockBlob`, as it would
  to a Blob SAS URL (diagnostics bundles); it writes that one name and nothing else;
- `DELETE /artifacts/<name>`: remove it (URLs signed for it then answer 404).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import urllib.parse
from pathlib import Path
from typing import Any

from aiohttp import web

from local_hub import errors, files
from local_hub.clock import iso
from local_hub.rest.context import json_response, of, whole_number

__all__ = [
    "ARTIFACT_NAME",
    "DEFAULT_TTL",
    "MAX_TTL",
    "routes",
    "sign_artifact",
    "signed_url",
    "verify_artifact_signature",
]

routes = web.RouteTableDef()

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_CHUNK = 256 * 1024
DEFAULT_TTL = 24 * 3600
MAX_TTL = 366 * 24 * 3600


def sign_artifact(key: bytes, name: str, expiry: int, permission: str = "r") -> str:
    """The signature of a URL for `name` valid until `expiry` (Unix seconds): `r` to download,
    `w` to upload."""
    text = f"artifacts/{name}\n{expiry}" + ("" if permission == "r" else f"\n{permission}")
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify_artifact_signature(
    keys: list[bytes], name: str, expiry: str, sig: str, now: float, permission: str = "r"
) -> None:
    """Raises Unauthorized unless `sig` signs `name` for `permission` until a future `expiry`."""
    what = "download" if permission == "r" else "upload"
    if not (expiry.isascii() and expiry.isdigit()) or int(expiry) <= now:
        raise errors.Unauthorized(f"The {what} URL has expired; ask for a new one.")
    if not sig.isascii():  # compare_digest takes ASCII text only
        raise errors.Unauthorized(f"The {what} URL's signature is not valid.")
    for key in keys:
        if hmac.compare_digest(sign_artifact(key, name, int(expiry), permission), sig):
            return
    raise errors.Unauthorized(f"The {what} URL's signature is not valid.")


def signed_url(host_name: str, key: bytes, name: str, expiry: int, permission: str = "r") -> str:
    """The device-usable URL of `name` on the hub at `host_name`, valid until `expiry`: to
    download it (`r`) or to upload it (`w`)."""
    quoted = urllib.parse.quote(name)
    sig = sign_artifact(key, name, expiry, permission)
    write = "" if permission == "r" else f"&sp={permission}"
    return f"https://{host_name}/artifacts/{quoted}?se={expiry}{write}&sig={sig}"


def _ttl(request: web.Request) -> int:
    text = request.query.get("ttl")
    if text is None:
        return DEFAULT_TTL
    ttl = whole_number(text, 1, MAX_TTL)
    if ttl is None:
        raise errors.BadRequest(
            f"ttl {text[:40]!r} is not a whole number of seconds from 1 to {MAX_TTL}."
        )
    return ttl


def _signed(request: web.Request, name: str, permission: str = "r") -> dict[str, Any]:
    ctx = of(request)
    expiry = int(ctx.clock()) + _ttl(request)
    return {
        "url": signed_url(ctx.host_name, ctx.owner_keys[0], name, expiry, permission),
        "expiresAt": iso(expiry),
    }


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _facts(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {
        "name": path.name,
        "size": stat.st_size,
        "sha256": _hash_file(path),
        "modified": iso(stat.st_mtime),
    }


def _path(root: Path, name: str) -> Path:
    if not ARTIFACT_NAME.match(name) or name.startswith(".") or ".." in name:
        raise errors.BadRequest(
            f"Artifact name {name!r} is invalid: use letters, digits, '.', '_' and '-'."
        )
    return root / name


async def receive(request: web.Request, target: Path) -> tuple[int, str]:
    """Store the request's body as `target`, whole or not at all; its size and SHA-256 (hex).
    Concurrent uploads of one name each write a file of their own; the last to finish wins."""
    digest = hashlib.sha256()
    size = 0
    with files.atomic_writer(target) as out:
        async for chunk in request.content.iter_chunked(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@routes.put("/artifacts/{name}")
async def upload(request: web.Request) -> web.Response:
    ctx = of(request)
    name = request.match_info["name"]
    target = _path(ctx.artifacts_dir, name)
    signed = _signed(request, name)  # a bad ttl is refused before anything is stored
    ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    size, sha256 = await receive(request, target)
    quoted = urllib.parse.quote(name)
    facts = {
        "name": name,
        "size": size,
        "sha256": sha256,
        "path": f"/artifacts/{quoted}",
    }
    return json_response({**facts, **signed}, status=201)


@routes.get("/artifacts")
async def list_artifacts(request: web.Request) -> web.Response:
    root = of(request).artifacts_dir

    def scan() -> list[dict[str, Any]]:
        if not root.is_dir():
            return []
        found = [p for p in sorted(root.iterdir()) if p.is_file() and ARTIFACT_NAME.match(p.name)]
        return [_facts(p) for p in found]

    return json_response(await asyncio.to_thread(scan))


@routes.post("/artifacts/{name}/url")
async def sign(request: web.Request) -> web.Response:
    ctx = of(request)
    name = request.match_info["name"]
    target = _path(ctx.artifacts_dir, name)
    if not target.is_file():
        raise errors.NotFound(f"No artifact named {name!r}; upload it first.")
    facts = await asyncio.to_thread(_facts, target)
    return json_response({**facts, **_signed(request, name)})


@routes.post("/artifacts/{name}/upload-url")
async def sign_upload(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    _path(of(request).artifacts_dir, name)  # a bad name is refused here, not at upload time
    return json_response({"name": name, **_signed(request, name, "w")})


@routes.delete("/artifacts/{name}")
async def delete(request: web.Request) -> web.Response:
    ctx = of(request)
    name = request.match_info["name"]
    target = _path(ctx.artifacts_dir, name)
    try:
        target.unlink()
    except FileNotFoundError:
        raise errors.NotFound(f"No artifact named {name!r}.") from None
    return web.Response(status=204)


@routes.get("/artifacts/{name}")
async def download(request: web.Request) -> web.StreamResponse:
    ctx = of(request)
    name = request.match_info["name"]
    target = _path(ctx.artifacts_dir, name)
    if not target.is_file():
        raise errors.NotFound(f"No artifact named {name!r}.")
    return web.FileResponse(target, chunk_size=_CHUNK)
