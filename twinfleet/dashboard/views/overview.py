"""`/`: the fleet at a glance, each chart from one GROUP BY query, and running campaigns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from twinfleet.dashboard import caching, hub_access
from twinfleet.dashboard.context import DASHBOARD, Dashboard

__all__ = ["CHARTS", "Chart", "RunningCampaign", "overview"]

CHARTS = (
    ("Connection state", "connectionState"),
    ("Identity status", "status"),
    ("Firmware version", "properties.reported.firmware.currentFwVersion"),
    ("Firmware update status", "properties.reported.firmware.fwUpdateStatus"),
    ("Configuration status", "properties.reported.configuration.status"),
)
ACTIVE = ("created", "running", "paused")


@dataclass
class Chart:
    title: str
    path: str
    groups: list[tuple[Any, int]] = field(default_factory=list)
    fetched_at: float | None = None
    stale: bool = False
    error: str | None = None

    @property
    def query(self) -> str:
        return f"SELECT {self.path}, COUNT() AS devices FROM devices GROUP BY {self.path}"

    @property
    def data(self) -> dict[str, Any]:
        return {
            "type": "bar",
            "label": self.title,
            "labels": ["(none)" if v is None else str(v) for v, _ in self.groups],
            "values": [n for _, n in self.groups],
        }

    @property
    def total(self) -> int:
        return sum(n for _, n in self.groups)


@dataclass
class RunningCampaign:
    summary: hub_access.CampaignSummary
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in hub_access.FINISHED_STATES)


async def _chart(dash: Dashboard, title: str, path: str) -> Chart:
    chart = Chart(title, path)
    try:
        cached = await dash.cached(("group", path), dash.access.group_by, path)
    except caching.BudgetSpent as exc:
        chart.error = str(exc)
        return chart
    chart.groups, chart.fetched_at, chart.stale = cached.value, cached.fetched_at, cached.stale
    return chart


async def running_campaigns(dash: Dashboard) -> list[RunningCampaign]:
    listed = await dash.cached(("campaigns",), dash.access.campaigns)
    running = []
    for summary in listed.value:
        if summary.status not in ACTIVE:
            continue
        try:
            counts = await dash.cached(
                ("campaign-states", summary.campaign_id),
                dash.access.campaign_state_counts,
                summary.campaign_id,
            )
        except caching.BudgetSpent:
            running.append(RunningCampaign(summary, {}))
            continue
        running.append(RunningCampaign(summary, counts.value))
    return running


async def overview(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    charts = [await _chart(dash, title, path) for title, path in CHARTS]
    try:
        campaigns = await running_campaigns(dash)
        campaigns_error = None
    except caching.BudgetSpent as exc:
        campaigns, campaigns_error = [], str(exc)
    template = "_overview_live.html" if "HX-Request" in request.headers else "overview.html"
    return dash.page(
        request,
        template,
        title="Fleet overview",
        charts=charts,
        campaigns=campaigns,
        campaigns_error=campaigns_error,
    )
