"""Twins and direct methods: `/twins/{id}` and `/twins/{id}/methods`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from local_hub import errors
from local_hub.rest.context import json_body, json_response, of

__all__ = ["routes"]

routes = web.RouteTableDef()

_METHOD_PAYLOAD_LIMIT = 128 * 1024
_TIMEOUT_RANGE = (5, 300)


@routes.get("/twins/{device_id}")
async def get_twin(request: web.Request) -> web.Response:
    return json_response(of(request).registry.twin(request.match_info["device_id"]))


@routes.patch("/twins/{device_id}")
async def patch_twin(request: web.Request) -> web.Response:
    return await _update(request, replace=False)


@routes.put("/twins/{device_id}")
async def put_twin(request: web.Request) -> web.Response:
    return await _update(request, replace=True)


async def _update(request: web.Request, *, replace: bool) -> web.Response:
    ctx = of(request)
    body = await json_body(request)
    device_id = request.match_info["device_id"]
    ctx.registry.update_twin(
        device_id, body, request.headers.get("If-Match"), replace=replace, wait=False
    )
    twin = ctx.registry.twin(device_id)  # as this write left it
    await ctx.registry.durable()  # answered once committed; the loop serves others meanwhile
    return json_response(twin)


def _seconds(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if type(value) is not int or not low <= value <= high:
        raise errors.BadRequest(f"{name} must be a whole number of seconds from {low} to {high}.")
    return value


@routes.post("/twins/{device_id}/methods")
async def invoke_method(request: web.Request) -> web.Response:
    ctx = of(request)
    device_id = request.match_info["device_id"]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise errors.BadRequest("The method request must be a JSON object.")
    name = body.get("methodName")
    if not isinstance(name, str) or not name or len(name) > 100:
        raise errors.BadRequest("methodName must be a name of 1 to 100 characters.")
    payload = body.get("payload")
    if len(json.dumps(payload)) > _METHOD_PAYLOAD_LIMIT:
        raise errors.BadRequest("The method payload is larger than 128 KB.", error_code="400027")
    response_timeout = _seconds(body, "responseTimeoutInSeconds", 30, *_TIMEOUT_RANGE)
    connect_timeout = _seconds(body, "connectTimeoutInSeconds", 0, 0, 300)
    if ctx.registry.get_device(device_id) is None:
        raise errors.DeviceNotFound(f"Device {device_id!r} is not registered on this hub.")
    status, result = await ctx.endpoint.invoke_method(
        device_id,
        name,
        payload,
        connect_timeout=connect_timeout,
        response_timeout=response_timeout,
    )
    return json_response({"status": status, "payload": result})
