"""`/jobs` and `/jobs/<id>`: scheduled jobs, their statistics and each device's result."""

from __future__ import annotations

from aiohttp import web

from twin_manager import HubError
from twinfleet.dashboard import caching
from twinfleet.dashboard.context import DASHBOARD

__all__ = ["job", "jobs"]


async def jobs(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    try:
        cached = await dash.cached(("jobs",), dash.access.jobs)
    except caching.BudgetSpent as exc:
        return dash.page(request, "jobs.html", title="Jobs", jobs=[], error=str(exc))
    return dash.page(request, "jobs.html", title="Jobs", jobs=cached.value, error=None)


async def job(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    job_id = request.match_info["job_id"]
    try:
        found = await dash.run(dash.access.job, job_id)
    except HubError as exc:
        if exc.status != 404:
            raise
        return dash.page(
            request,
            "error.html",
            status=404,
            title="No such job",
            message=f"No job {job_id!r} on this hub.",
        )
    try:
        results = (
            await dash.cached(("job-results", job_id), dash.access.job_results, job_id)
        ).value
        error = None
    except caching.BudgetSpent as exc:
        results, error = [], str(exc)
    return dash.page(
        request, "job.html", title=f"Job {job_id}", job=found, results=results, error=error
    )
