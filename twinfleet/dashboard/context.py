"""`Dashboard`: what every view shares (settings, hub access, cache, store, alerts, history)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jinja2
from aiohttp import web

from twinfleet.dashboard import (
    alerting,
    caching,
    hub_access,
    rendering,
    security,
    storage,
    working,
)
from twinfleet.dashboard.settings import Settings

__all__ = ["DASHBOARD", "Dashboard", "ProgressSample"]

T = TypeVar("T")


@dataclass(frozen=True)
class ProgressSample:
    """One campaign's progress at one moment: finished fraction by group."""

    at: float
    by_group: dict[str, float]


@dataclass
class Dashboard:
    settings: Settings
    access: hub_access.HubAccess
    cache: caching.QueryCache
    store: storage.Store
    alerts: alerting.AlertEngine
    guard: security.Guard
    workers: working.WorkerPool
    templates: jinja2.Environment = field(default_factory=rendering.environment)
    history: dict[str, deque[ProgressSample]] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, access: hub_access.HubAccess) -> Dashboard:
        budget = caching.QueryBudget(settings.query_budget)
        store = storage.Store(settings.store_path)
        return cls(
            settings,
            access,
            caching.QueryCache(budget, settings.cache_ttl),
            store,
            alerting.AlertEngine(store),
            security.Guard(settings),
            working.WorkerPool(),
        )

    async def cached(
        self, key: tuple[Any, ...], call: Callable[..., Any], *args: Any, cost: int = 1
    ) -> caching.Cached:
        """`call(*args)` in a worker thread, through the shared cache and budget."""
        return await self.cache.get(key, lambda: self.workers.run(call, *args), cost=cost)

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """An uncached hub call (a twin read or an action) in a worker thread."""
        return await self.workers.run(call, *args)

    async def saved_rows(self, query: storage.SavedQuery) -> list[dict[str, Any]]:
        """The first page (up to 1,000 rows) of a saved query, through the cache."""
        page = await self.cached(
            ("query", query.text, None, 1000), self.access.query_page, query.text, None, 1000
        )
        rows: list[dict[str, Any]] = page.value.rows
        return rows

    def record_progress(
        self, campaign_id: str, progress: hub_access.CampaignProgress, at: float
    ) -> list[ProgressSample]:
        """Remember the campaign's per-group progress at `at` (once per fetched value)."""
        samples = self.history.setdefault(campaign_id, deque(maxlen=720))
        if not samples or samples[-1].at != at:
            samples.append(
                ProgressSample(
                    at,
                    {
                        group: progress.group_finished.get(group, 0) / total
                        for group, total in sorted(progress.group_totals.items())
                        if total
                    },
                )
            )
        return list(samples)

    def page(
        self, request: web.Request, template: str, *, status: int = 200, **values: Any
    ) -> web.Response:
        """Render a page (or, for htmx's polling, the template's `live` fragment alone)."""
        context = {
            "csrf": self.guard.csrf_token,
            "read_only": self.settings.read_only,
            "firing": self.alerts.firing,
            "refresh": self.settings.refresh_seconds,
            "path": request.path,
            "budget": self.cache.budget,
            "now": time.time(),
            **values,
        }
        text = self.templates.get_template(template).render(context)
        return web.Response(text=text, status=status, content_type="text/html")


DASHBOARD = web.AppKey("dashboard", Dashboard)
