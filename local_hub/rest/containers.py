"""Blob containers in the artifacts store, over HTTPS: what import/export jobs read and write
(see `local_hub.blobs` for names and signatures).

- `POST /artifacts/{container}/container-url[?ttl=<seconds>&sp=r|w|rw]` (owner key): a signed
  container URL, `https://<hub>/artifacts/{container}?se=<expiry>&sp=<permissions>&sig=<sig>`;
- `PUT /artifacts/{container}/{blob}` (owner key, or the container URL's query with `w` and the
  header `x-ms-blob-type: BlockBlob`, as Blob Storage wants): store a blob;
- `GET /artifacts/{container}/{blob}` (owner key, or the container URL's query with `r`);
- `DELETE /artifacts/{container}/{blob}` (owner key); the container goes with its last blob.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from local_hub import blobs, errors
from local_hub.rest.artifacts import DEFAULT_TTL, MAX_TTL, receive
from local_hub.rest.context import of, whole_number

__all__ = ["routes", "signed_container_request"]

routes = web.RouteTableDef()

_CHUNK = 256 * 1024


def signed_container_request(request: web.Request) -> bool:
    """Whether `request` is a blob request authorised by a container URL's query (checked)."""
    ctx = of(request)
    container = request.match_info.get("container", "")
    needed = "r" if request.method in ("GET", "HEAD") else "w"
    if request.method not in ("GET", "HEAD", "PUT"):
        raise errors.Unauthorized("A container URL allows only GET and PUT of a blob.")
    blobs.verify_container_signature(ctx.owner_keys, container, request.query, ctx.clock(), needed)
    if needed == "w" and request.headers.get("x-ms-blob-type") != "BlockBlob":
        raise errors.BadRequest(
            "An upload with a container URL needs the header x-ms-blob-type: BlockBlob "
            "(as Azure Blob Storage does)."
        )
    return True


def _ttl_and_permissions(request: web.Request) -> tuple[int, str]:
    text = request.query.get("ttl")
    ttl = DEFAULT_TTL if text is None else whole_number(text, 1, MAX_TTL)
    if ttl is None:
        raise errors.BadRequest(
            f"ttl {str(text)[:40]!r} is not a whole number of seconds from 1 to {MAX_TTL}."
        )
    permissions = request.query.get("sp", "rw")
    if permissions not in blobs.PERMISSIONS:
        raise errors.BadRequest(f"sp must be one of {', '.join(blobs.PERMISSIONS)}.")
    return ttl, permissions


@routes.post("/artifacts/{container}/container-url")
async def sign_container(request: web.Request) -> web.Response:
    ctx = of(request)
    container = request.match_info["container"]
    blobs.container_dir(ctx.artifacts_dir, container)
    ttl, permissions = _ttl_and_permissions(request)
    expiry = int(ctx.clock()) + ttl
    url = blobs.container_url(ctx.host_name, ctx.owner_keys[0], container, expiry, permissions)
    return web.json_response({"container": container, "url": url, "permissions": permissions})


@routes.put("/artifacts/{container}/{blob}")
async def put_blob(request: web.Request) -> web.Response:
    ctx = of(request)
    target = blobs.blob_path(ctx.artifacts_dir, request.match_info["container"],
                       request.match_info["blob"])  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    size, sha256 = await receive(request, target)
    return web.json_response({"name": target.name, "size": size, "sha256": sha256}, status=201)


@routes.get("/artifacts/{container}/{blob}")
async def get_blob(request: web.Request) -> web.StreamResponse:
    ctx = of(request)
    container, blob = request.match_info["container"], request.match_info["blob"]
    target = blobs.blob_path(ctx.artifacts_dir, container, blob)
    if not await asyncio.to_thread(target.is_file):
        raise errors.NotFound(f"No blob {blob!r} in container {container!r}.")
    return web.FileResponse(target, chunk_size=_CHUNK)


@routes.delete("/artifacts/{container}/{blob}")
async def delete_blob(request: web.Request) -> web.Response:
    ctx = of(request)
    container, blob = request.match_info["container"], request.match_info["blob"]
    path = blobs.blob_path(ctx.artifacts_dir, container, blob)
    try:
        path.unlink()
    except FileNotFoundError:
        raise errors.NotFound(f"No blob {blob!r} in container {container!r}.") from None
    with contextlib.suppress(OSError):  # a container lasts as long as it holds blobs
        path.parent.rmdir()
    return web.Response(status=204)
