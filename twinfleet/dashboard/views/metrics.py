"""`/metrics`: the fleet in Prometheus' text format, read through the shared cache.

- `twinfleet_query_<name>{group=...}`: each saved query marked as a metric (a GROUP BY gives a
  sample per group, labelled by its other columns; otherwise the first number of the first row);
- `twinfleet_campaign_devices{campaign, state}` and `twinfleet_campaign_info{campaign, status}`;
- `twinfleet_alert_firing{rule}` (0 or 1) and `twinfleet_alert_value{rule}`;
- `twinfleet_dashboard_hub_queries_total` and `twinfleet_dashboard_cache_hits_total`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from twinfleet.dashboard import alerting, caching
from twinfleet.dashboard.context import DASHBOARD, Dashboard
from twinfleet.dashboard.views import explorer

__all__ = ["metric_name", "metrics"]


def metric_name(name: str) -> str:
    return "twinfleet_query_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def _query_family(name: str, text: str, rows: list[dict[str, Any]]) -> Metric:
    columns = explorer.columns_of(rows)
    grouped = len(columns) >= 2 and all(isinstance(r.get(columns[-1]), int | float) for r in rows)
    if not grouped:
        family = GaugeMetricFamily(metric_name(name), f"saved query {name}: {text}")
        family.add_metric([], alerting.value_of(rows))
        return family
    labels = [re.sub(r"[^a-zA-Z0-9_]", "_", c) or "group" for c in columns[:-1]]
    family = GaugeMetricFamily(metric_name(name), f"saved query {name}: {text}", labels=labels)
    for row in rows:
        values = ["" if row.get(c) is None else str(row.get(c)) for c in columns[:-1]]
        family.add_metric(values, float(row[columns[-1]]))
    return family


async def _families(dash: Dashboard) -> list[Metric]:
    families: list[Metric] = []
    for saved in dash.store.queries:
        if not saved.metric:
            continue
        try:
            rows = await dash.saved_rows(saved)
        except caching.BudgetSpent:
            continue  # a scrape without the sample beats a wrong one
        families.append(_query_family(saved.name, saved.text, rows))
    devices = GaugeMetricFamily(
        "twinfleet_campaign_devices", "devices of a campaign by state", labels=["campaign", "state"]
    )
    info = GaugeMetricFamily(
        "twinfleet_campaign_info", "a campaign and its status", labels=["campaign", "status"]
    )
    try:
        listed = (await dash.cached(("campaigns",), dash.access.campaigns)).value
        for summary in listed:
            info.add_metric([summary.campaign_id, summary.status], 1)
            counts = await dash.cached(
                ("campaign-states", summary.campaign_id),
                dash.access.campaign_state_counts,
                summary.campaign_id,
            )
            for state, count in sorted(counts.value.items()):
                devices.add_metric([summary.campaign_id, state], count)
    except caching.BudgetSpent:
        pass
    families += [devices, info]
    firing = GaugeMetricFamily(
        "twinfleet_alert_firing", "1 while an alert rule fires", labels=["rule"]
    )
    value = GaugeMetricFamily(
        "twinfleet_alert_value", "an alert rule's last value", labels=["rule"]
    )
    for state in dash.alerts.states:
        firing.add_metric([state.rule.name], 1 if state.state == "firing" else 0)
        if state.value is not None:
            value.add_metric([state.rule.name], state.value)
    queries = CounterMetricFamily(
        "twinfleet_dashboard_hub_queries", "hub queries the dashboard has made"
    )
    queries.add_metric([], dash.cache.budget.spent)
    hits = CounterMetricFamily("twinfleet_dashboard_cache_hits", "reads served from the cache")
    hits.add_metric([], dash.cache.hits)
    return [*families, firing, value, queries, hits]


async def metrics(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(await _families(dash)))
    return web.Response(
        body=generate_latest(registry),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
