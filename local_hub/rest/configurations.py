"""Automatic device configurations: `/configurations/{id}`, `/configurations`,
`/configurations/testQueries`."""

from __future__ import annotations

from aiohttp import web

from local_hub import configurations, errors
from local_hub.rest.context import json_body, json_response, of, whole_number

__all__ = ["routes"]

routes = web.RouteTableDef()


def _manager(request: web.Request) -> configurations.ConfigurationManager:
    manager = of(request).configurations
    assert manager is not None
    return manager


@routes.post("/configurations/testQueries")
async def test_queries(request: web.Request) -> web.Response:
    return json_response(_manager(request).test_queries(await json_body(request)))


@routes.put("/configurations/{config_id}")
async def put_configuration(request: web.Request) -> web.Response:
    body = await json_body(request)
    config = _manager(request).put(
        request.match_info["config_id"], body, request.headers.get("If-Match")
    )
    return json_response(config)


@routes.get("/configurations/{config_id}")
async def get_configuration(request: web.Request) -> web.Response:
    return json_response(_manager(request).get(request.match_info["config_id"]))


@routes.delete("/configurations/{config_id}")
async def delete_configuration(request: web.Request) -> web.Response:
    _manager(request).delete(request.match_info["config_id"], request.headers.get("If-Match"))
    return web.Response(status=204)


@routes.get("/configurations")
async def list_configurations(request: web.Request) -> web.Response:
    top_text = request.query.get("top", "100")
    top = whole_number(top_text, 1, 100)
    if top is None:
        raise errors.BadRequest("top must be a whole number from 1 to 100.")
    return json_response(_manager(request).list(top))
