"""Device identities and registry statistics: `/devices/{id}`, `/devices` (list; POST: bulk
operations), `/statistics/*`."""

from __future__ import annotations

from aiohttp import web

from local_hub import bulk_operations, errors
from local_hub.rest.context import json_body, json_response, of, whole_number

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.put("/devices/{device_id}")
async def put_device(request: web.Request) -> web.Response:
    ctx = of(request)
    device_id = request.match_info["device_id"]
    body = await json_body(request)
    if not isinstance(body, dict):
        raise errors.BadRequest("The device must be a JSON object.")
    if body.get("deviceId", device_id) != device_id:
        raise errors.BadRequest("The deviceId in the body differs from the one in the path.")
    body["deviceId"] = device_id
    if_match = request.headers.get("If-Match")
    if if_match is None:
        return json_response(ctx.registry.create_device(body))
    return json_response(ctx.registry.update_device(body, if_match))


@routes.get("/devices/{device_id}")
async def get_device(request: web.Request) -> web.Response:
    return json_response(of(request).registry.identity(request.match_info["device_id"]))


@routes.delete("/devices/{device_id}")
async def delete_device(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    of(request).registry.delete_device(device_id, request.headers.get("If-Match"))
    return web.Response(status=204)


@routes.post("/devices")
async def bulk_registry(request: web.Request) -> web.Response:
    body = await json_body(request)
    status, result = bulk_operations.apply(of(request).registry, body)
    headers = {}
    if status != 200:
        errors_found = result["errors"]
        whole = len(errors_found) == 1 and "operation" not in errors_found[0]
        headers["iothub-errorcode"] = (
            errors_found[0]["errorCode"] if whole else "BulkRegistryOperationFailure"
        )
    return json_response(result, status=status, headers=headers)


@routes.get("/devices")
@routes.get("/devices/")  # the Node.js SDK's Registry.list()
async def list_devices(request: web.Request) -> web.Response:
    top_text = request.query.get("top")
    top = None
    if top_text is not None:
        top = whole_number(top_text, 1, 1000)
        if top is None:
            raise errors.BadRequest("top must be a whole number from 1 to 1000.")
    return json_response(of(request).registry.identities(top if top is not None else 1000))


@routes.get("/statistics/devices")
async def device_statistics(request: web.Request) -> web.Response:
    stats = of(request).registry.statistics()
    return json_response(
        {k: stats[k] for k in ("totalDeviceCount", "enabledDeviceCount", "disabledDeviceCount")}
    )


@routes.get("/statistics/service")
async def service_statistics(request: web.Request) -> web.Response:
    return json_response({"connectedDeviceCount": of(request).endpoint.connected_count()})
