"""`/campaigns` and `/campaigns/<id>`: counts, per-group progress over time, failure reasons,
the log, the plan, and pause / resume / cancel / abort (confirmed first); the detail refreshes
itself while the campaign runs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from twin_manager import DeviceNotFound
from twinfleet.dashboard import caching, hub_access
from twinfleet.dashboard.context import DASHBOARD, Dashboard, ProgressSample
from twinfleet.dashboard.rendering import when

__all__ = ["campaign", "campaign_plan", "campaigns", "steer"]

PLAN_ROWS = 200


async def campaigns(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    error = None
    rows: list[tuple[hub_access.CampaignSummary, dict[str, int]]] = []
    try:
        listed = await dash.cached(("campaigns",), dash.access.campaigns)
        for summary in listed.value:
            counts = await dash.cached(
                ("campaign-states", summary.campaign_id),
                dash.access.campaign_state_counts,
                summary.campaign_id,
            )
            rows.append((summary, counts.value))
    except caching.BudgetSpent as exc:
        error = str(exc)
    return dash.page(request, "campaigns.html", title="Campaigns", rows=rows, error=error)


def _progress_chart(samples: list[ProgressSample]) -> dict[str, Any]:
    groups = sorted({g for s in samples for g in s.by_group})
    return {
        "type": "line",
        "labels": [when(s.at)[11:19] for s in samples],
        "series": {g: [round(100 * s.by_group.get(g, 0), 1) for s in samples] for g in groups},
    }


async def _progress(dash: Dashboard, campaign_id: str) -> caching.Cached:
    return await dash.cached(
        ("campaign", campaign_id), dash.access.campaign_progress, campaign_id, cost=4
    )


async def campaign(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    campaign_id = request.match_info["campaign_id"]
    try:
        cached = await _progress(dash, campaign_id)
    except DeviceNotFound:
        return dash.page(
            request,
            "error.html",
            status=404,
            title="No such campaign",
            message=f"No campaign {campaign_id!r} on this hub.",
        )
    except caching.BudgetSpent as exc:
        return dash.page(request, "error.html", status=503, title="Campaign", message=str(exc))
    progress: hub_access.CampaignProgress = cached.value
    samples = dash.record_progress(campaign_id, progress, cached.fetched_at)
    live = progress.summary.status in ("created", "running", "paused")
    fragment = "HX-Request" in request.headers
    response = dash.page(
        request,
        "_campaign_live.html" if fragment else "campaign.html",
        title=f"Campaign {campaign_id}",
        progress=progress,
        chart=_progress_chart(samples),
        fetched_at=cached.fetched_at,
        stale=cached.stale,
        live=live,
    )
    if fragment and not live:
        response.set_status(286)  # htmx stops polling: a finished campaign changes no more
    return response


async def campaign_plan(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    campaign_id = request.match_info["campaign_id"]
    try:
        cached = await dash.cached(("plan", campaign_id), dash.access.campaign_plan, campaign_id)
    except DeviceNotFound:
        return dash.page(
            request,
            "error.html",
            status=404,
            title="No such campaign",
            message=f"No campaign {campaign_id!r} on this hub.",
        )
    except caching.BudgetSpent as exc:
        return dash.page(request, "error.html", status=503, title="Plan", message=str(exc))
    plan = cached.value
    waves: dict[int, list[Any]] = {}
    for planned in plan.devices:
        waves.setdefault(planned.wave, []).append(planned)
    return dash.page(
        request,
        "plan.html",
        title=f"Plan of {campaign_id}",
        campaign_id=campaign_id,
        plan=plan,
        waves=waves,
        shown=plan.devices[:PLAN_ROWS],
    )


async def steer(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    campaign_id = request.match_info["campaign_id"]
    action = request.match_info["action"]
    if action not in hub_access.STEERING:
        raise web.HTTPNotFound(text=f"No campaign action {action!r}.")
    form = await request.post()
    if form.get("confirmed") != "yes":
        return dash.page(
            request,
            "confirm.html",
            title="Confirm",
            question=f"{action.capitalize()} campaign {campaign_id!r}?",
            action=request.rel_url.raw_path,
            back=f"/campaigns/{quote(campaign_id, safe='')}",
            fields={},
        )
    try:
        await dash.run(dash.access.steer, campaign_id, action)
    except DeviceNotFound:
        raise web.HTTPNotFound(text=f"No campaign {campaign_id!r} on this hub.") from None
    dash.cache.forget(lambda key: campaign_id in key or key == ("campaigns",))
    raise web.HTTPSeeOther(f"/campaigns/{quote(campaign_id, safe='')}")
