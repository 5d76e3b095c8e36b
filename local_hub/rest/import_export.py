"""Import and export jobs: `POST /jobs/create`, `GET /jobs`, `GET /jobs/{id}`, `DELETE /jobs/{id}`
(see `local_hub.import_export`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from local_hub import blobs, import_export
from local_hub.rest.context import json_body, json_response, of

__all__ = ["routes"]

routes = web.RouteTableDef()


def _runner(request: web.Request) -> import_export.ImportExportJobs:
    runner = of(request).import_export
    assert runner is not None
    return runner


@routes.post("/jobs/create")
async def create_job(request: web.Request) -> web.Response:
    ctx = of(request)
    body = await json_body(request)

    def resolve(url: Any, field: str, needed: str) -> str:
        return blobs.resolve_container_url(
            url, field=field, host_name=ctx.host_name, keys=ctx.owner_keys, now=ctx.clock(),
            needed=needed,
        )  # fmt: skip

    return json_response(_runner(request).create(body, resolve))


@routes.get("/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    return json_response(_runner(request).jobs())


@routes.get("/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    return json_response(_runner(request).get(request.match_info["job_id"]))


@routes.delete("/jobs/{job_id}")
async def cancel_job(request: web.Request) -> web.Response:
    return json_response(_runner(request).cancel(request.match_info["job_id"]))
