"""Scheduled jobs: `/jobs/v2/{id}`, `/jobs/v2/{id}/cancel`, `/jobs/v2/query`."""

from __future__ import annotations

from aiohttp import web

from local_hub import errors, jobs
from local_hub.rest.context import json_body, json_response, of

__all__ = ["routes"]

routes = web.RouteTableDef()
_STATUSES = ("queued", "scheduled", "running", "completed", "failed", "cancelled", "unknown")


def _runner(request: web.Request) -> jobs.JobRunner:
    runner = of(request).jobs
    assert runner is not None
    return runner


@routes.get("/jobs/v2/query")
async def query_jobs(request: web.Request) -> web.Response:
    job_type = request.query.get("jobType") or None
    status = request.query.get("jobStatus") or None
    if job_type is not None and job_type not in jobs.JOB_TYPES:
        raise errors.BadRequest(f"jobType must be one of {', '.join(jobs.JOB_TYPES)}.")
    if status is not None and status not in _STATUSES:
        raise errors.BadRequest(f"jobStatus must be one of {', '.join(_STATUSES)}.")
    items = _runner(request).list(job_type, status)
    return json_response({"type": "jobResponse", "items": items, "continuationToken": None})


@routes.put("/jobs/v2/{job_id}")
async def create_job(request: web.Request) -> web.Response:
    body = await json_body(request)
    return json_response(_runner(request).create(request.match_info["job_id"], body))


@routes.get("/jobs/v2/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    return json_response(_runner(request).get(request.match_info["job_id"]))


@routes.post("/jobs/v2/{job_id}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    return json_response(_runner(request).cancel(request.match_info["job_id"]))
