"""The aiohttp application: routes, error pages, and the alert evaluation loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from twin_manager import HubError, Throttled
from twinfleet.dashboard import assets, caching
from twinfleet.dashboard.context import DASHBOARD, Dashboard
from twinfleet.dashboard.views import alerts, campaigns, devices, explorer, jobs, metrics, overview

__all__ = ["make_app"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hub failures and a spent budget become pages that say so, never a traceback."""
    dash = request.app[DASHBOARD]
    try:
        return await handler(request)
    except caching.BudgetSpent as exc:
        response = dash.page(
            request, "error.html", status=503, title="Query budget spent", message=str(exc)
        )
        response.headers["Retry-After"] = str(int(exc.retry_after) + 1)
        return response
    except Throttled as exc:
        response = dash.page(
            request,
            "error.html",
            status=503,
            title="The hub is throttling",
            message=str(exc).splitlines()[0],
        )
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response
    except HubError as exc:
        log.warning("hub call failed: %s (%d)", type(exc).__name__, exc.status)
        refused = 400 <= exc.status < 500 and exc.status not in (401, 403, 429)
        return dash.page(
            request,
            "error.html",
            status=400 if refused else 502,
            title="The hub refused the request" if refused else "The hub failed",
            message=str(exc).splitlines()[0],
        )


async def _alert_loop(dash: Dashboard) -> None:
    while True:
        try:
            await dash.alerts.evaluate(dash.saved_rows)
        except Exception:  # one bad pass must not stop alerting
            log.exception("alert evaluation failed")
        await asyncio.sleep(dash.settings.alert_interval)


def make_app(dash: Dashboard) -> web.Application:
    """The dashboard's web application (security middleware first)."""
    app = web.Application(middlewares=[dash.guard.middleware, _errors], client_max_size=256 * 1024)
    app[DASHBOARD] = dash

    async def alerting(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_alert_loop(dash))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(alerting)
    r = app.router
    r.add_get("/", overview.overview, name="overview")
    r.add_get("/query", explorer.explore, name="query")
    r.add_get("/query.{format:csv|json}", explorer.download, name="download")
    r.add_post("/queries", explorer.save_query)
    r.add_post("/queries/delete", explorer.delete_query)
    r.add_get("/devices/{device_id}", devices.device, name="device")
    r.add_post("/devices/{device_id}/invoke", devices.invoke)
    r.add_post("/devices/{device_id}/desired", devices.edit_desired)
    r.add_get("/campaigns", campaigns.campaigns)
    r.add_get("/campaigns/{campaign_id}", campaigns.campaign)
    r.add_get("/campaigns/{campaign_id}/plan", campaigns.campaign_plan)
    r.add_post("/campaigns/{campaign_id}/{action}", campaigns.steer)
    r.add_get("/jobs", jobs.jobs)
    r.add_get("/jobs/{job_id}", jobs.job)
    r.add_get("/alerts", alerts.alerts)
    r.add_get("/alerts/banner", alerts.banner)
    r.add_post("/alerts", alerts.save_alert)
    r.add_post("/alerts/delete", alerts.delete_alert)
    r.add_get("/metrics", metrics.metrics)
    r.add_get("/static/{name:.+}", assets.Assets().handle)
    return app
