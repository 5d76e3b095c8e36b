"""The query budget and cache alone (an injected clock), then against a real hub: any number of
viewers cost at most the budget."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import requests

from tests.dashboard.conftest import ModuleHub, dashboard_settings
from twin_manager import TwinManager
from twinfleet.dashboard import (
    BudgetSpent,
    DashboardServer,
    HubAccess,
    QueryBudget,
    QueryCache,
    Settings,
)

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` in a thread of its own: in a worker that ran browser tests, Playwright's sync
    API keeps an event loop running in the main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_refills_at_its_rate() -> None:
    clock = Clock()
    budget = QueryBudget(6, clock=clock)
    assert [budget.take(1) for _ in range(6)] == [0.0] * 6
    assert budget.take(1) == pytest.approx(10.0)  # 6 a minute: one more in 10 s
    clock.now += 10
    assert budget.take(1) == 0.0
    clock.now += 3600
    assert budget.available == 6  # never more saved up than a minute's worth
    assert budget.spent == 7
    with pytest.raises(ValueError, match="positive"):
        QueryBudget(0)


def test_the_cache_fetches_once_per_ttl_and_serves_stale_when_spent() -> None:
    clock = Clock()
    cache = QueryCache(QueryBudget(2, clock=clock), ttl=5, clock=clock)
    fetched: list[int] = []

    async def fetch() -> int:
        fetched.append(1)
        await asyncio.sleep(0.01)
        return len(fetched)

    async def scenario() -> list[Any]:
        together = await asyncio.gather(*(cache.get(("k",), fetch) for _ in range(20)))
        again = await cache.get(("k",), fetch)
        clock.now += 6
        refreshed = await cache.get(("k",), fetch)
        clock.now += 6
        stale = await cache.get(("k",), fetch)  # the budget (2 a minute) is spent
        with pytest.raises(BudgetSpent, match="next query is possible in"):
            await cache.get(("other",), fetch)
        return [*{c.value for c in together}, again.value, refreshed.value, stale]

    values = run_async(scenario())
    assert values[:3] == [1, 1, 2]
    assert values[3].value == 2
    assert values[3].stale
    assert len(fetched) == 2


def test_a_failed_fetch_is_not_cached() -> None:
    cache = QueryCache(QueryBudget(100), ttl=60)

    async def failing() -> int:
        raise RuntimeError("hub down")

    async def ok() -> int:
        return 7

    async def scenario() -> int:
        with pytest.raises(RuntimeError):
            await cache.get(("k",), failing)
        return (await cache.get(("k",), ok)).value

    assert run_async(scenario()) == 7


def test_many_viewers_cost_at_most_the_budget(module_hub: ModuleHub) -> None:
    module_hub.fleet.devices.create("budget-0")
    settings = dashboard_settings(module_hub.root, query_budget=8, cache_ttl=0)
    with DashboardServer(settings, HubAccess(module_hub.fleet)) as server:
        pages = ["", "query?q=SELECT+*+FROM+devices", "campaigns", "metrics"] * 10
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda p: requests.get(server.url + p, timeout=30), pages))
        assert {a.status_code for a in answers} <= {200, 503}
        assert any("query budget" in a.text for a in answers)  # said so, not failed
        refilled = math.ceil(8 * (time.monotonic() - started) / 60)  # 8 a minute meanwhile
        assert server.dashboard.cache.budget.spent <= 8 + refilled


def test_the_default_budget_keeps_an_s1_hub_from_throttling(make_hub: Any) -> None:
    hub = make_hub(tier="S1")
    fleet = TwinManager.from_local_hub(hub)
    fleet.devices.create("s1-0")
    settings = Settings(store_path=hub.data_dir.parent / "s1.json", port=0, cache_ttl=0)
    assert settings.query_budget < 20  # what an S1 unit allows a minute, with room to spare
    with DashboardServer(settings, HubAccess(fleet)) as server:
        pages = ["", "query?q=SELECT+*+FROM+devices", "campaigns", "metrics", "jobs"] * 8
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda p: requests.get(server.url + p, timeout=60), pages))
        refilled = math.ceil(settings.query_budget * (time.monotonic() - started) / 60)
    assert {a.status_code for a in answers} <= {200, 503}
    assert not [a for a in answers if "throttling" in a.text.lower()]
    queries = hub.quotas["throttles"]["queries"]
    assert queries["throttled"] == 0, queries
    assert queries["shaped"] == 0, queries  # never even made to wait
    assert 0 < queries["admitted"] <= settings.query_budget + refilled
