"""The service endpoint's web application: IoT Hub's REST API subset, its auth and errors.

Every request but a signed artifact download must carry the owner policy's SAS token
(`skn=iothubowner`, `sr` = the hub's service host name) and an `api-version`. Errors come back in
IoT Hub's shape: a JSON body whose `Message` holds the error code, a tracking id and the message,
and an `iothub-errorcode` header with the code's name.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from local_hub import errors, tokens
from local_hub.clock import iso
from local_hub.rest import (
    artifacts,
    configurations,
    containers,
    devices,
    import_export,
    jobs,
    querying,
    throttling,
    twins,
)
from local_hub.rest.connections import SERVER_NAME
from local_hub.rest.context import CONTEXT, ServiceContext

__all__ = ["error_response", "make_app"]

log = logging.getLogger(__name__)

OWNER_POLICY = "iothubowner"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(exc: errors.HubError, now: float) -> web.Response:
    """IoT Hub's error body and headers for `exc`."""
    message = {
        "errorCode": int(exc.error_code),
        "trackingId": uuid.uuid4().hex,
        "message": exc.message,
        "timestampUtc": iso(now),
    }
    headers = {"iothub-errorcode": exc.code_name}
    if isinstance(exc, errors.Throttled):
        headers["Retry-After"] = f"{max(1, round(exc.retry_after))}"
    body = {"Message": f"ErrorCode:{exc.code_name};{json.dumps(message)}", "ExceptionMessage": ""}
    return web.Response(
        body=json.dumps(body).encode(),
        status=exc.status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx: ServiceContext = request.app[CONTEXT]
    try:
        return await handler(request)
    except errors.HubError as exc:
        log.info("%s %s -> %d %s", request.method, request.path, exc.status, exc.code_name)
        response = error_response(exc, ctx.clock())
        if isinstance(exc, errors.RequestTimeout):
            response.force_close()  # the rest of the body may still trickle in: no keep-alive
        return response
    except web.HTTPNotFound:
        return error_response(errors.NotFound(f"No such resource: {request.path}."), ctx.clock())
    except ConnectionResetError:  # the client left mid-request; nothing was changed
        log.info(
            "%s %s: the client closed the connection mid-request", request.method, request.path
        )
        return error_response(errors.BadRequest("The request was cut short."), ctx.clock())
    except web.HTTPMethodNotAllowed:
        refused = errors.BadRequest(f"{request.method} is not allowed on {request.path}.")
        refused.status = 405
        return error_response(refused, ctx.clock())


def _signed_permission(request: web.Request) -> str | None:
    """`r` for a signed download, `w` for a signed upload, None for anything else."""
    if (
        not request.path.startswith("/artifacts/")
        or "sig" not in request.query
        or "Authorization" in request.headers
    ):
        return None
    if request.method in ("GET", "HEAD"):
        return "r"
    if request.method == "PUT" and request.query.get("sp") == "w":
        return "w"
    return None


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx: ServiceContext = request.app[CONTEXT]
    blob = "blob" in request.match_info and "container" in request.match_info
    if blob and "sig" in request.query and "Authorization" not in request.headers:
        containers.signed_container_request(request)
        return await handler(request)
    permission = None if blob else _signed_permission(request)
    if permission is not None:
        name = request.match_info.get("name", "")
        artifacts.verify_artifact_signature(
            ctx.owner_keys, name, request.query.get("se", ""), request.query["sig"], ctx.clock(),
            permission,
        )  # fmt: skip
        if permission == "w" and request.headers.get("x-ms-blob-type") != "BlockBlob":
            raise errors.BadRequest(
                "An upload with a signed URL needs the header x-ms-blob-type: BlockBlob "
                "(as Azure Blob Storage does)."
            )
        return await handler(request)
    header = request.headers.get("Authorization")
    if not header:
        raise errors.Unauthorized("The request has no Authorization header with a SAS token.")
    tokens.verify_sas_token(
        header, resource=ctx.host_name, keys=ctx.owner_keys, now=ctx.clock(), key_name=OWNER_POLICY
    )
    artifact = request.path == "/artifacts" or request.path.startswith("/artifacts/")
    if not artifact and "api-version" not in request.query:
        raise errors.BadRequest("The request has no api-version query parameter.")
    return await handler(request)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME  # never the web server's name and version


def make_app(context: ServiceContext, *, middlewares: Sequence[Middleware] = ()) -> web.Application:
    """The aiohttp application serving `context`'s hub.

    Args:
        context: the hub.
        middlewares: more middlewares, run on every request before authentication (inside the
            one that turns HubErrors into IoT Hub's error answers).
    """
    chain = [_errors, *middlewares, _auth, throttling.middleware]
    app = web.Application(middlewares=chain, client_max_size=1024 * 1024)
    app.on_response_prepare.append(_server_header)
    app[CONTEXT] = context
    modules = (devices, twins, querying, jobs, import_export, configurations, containers, artifacts,
               throttling)  # fmt: skip
    for module in modules:
        app.add_routes(module.routes)
    return app
