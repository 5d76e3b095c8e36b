"""The dashboard over a 10,000-device local hub: the overview and a 1,000-row query page, cold
(every query goes to the hub) and warm (from the shared cache), with the hub queries each cost;
beside them, the peers: the same reads through TwinManager directly, and an overview built the
naive way (fetching every twin)."""

from __future__ import annotations

import concurrent.futures
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from local_hub import LocalHub
from twin_manager import TwinManager
from twinfleet.dashboard import DashboardServer, HubAccess, Settings
from twinfleet.dashboard.views.overview import CHARTS

HOST = "127.0.14.203"
DEVICES = 10_000
PAGE = "query?q=SELECT+*+FROM+devices&size=1000"


def _timed(label: str, server: DashboardServer, path: str) -> None:
    spent = server.dashboard.cache.budget.spent
    started = time.perf_counter()
    response = requests.get(server.url + path, timeout=120)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    cost = server.dashboard.cache.budget.spent - spent
    print(
        f"   {label}: {elapsed:,.0f} ms, {len(response.content) / 1024:,.0f} KiB, "
        f"{cost} hub queries"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalHub(Path(tmp) / "hub", host=HOST) as hub:
        fleet = TwinManager.from_local_hub(hub)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: fleet.devices.create(f"d-{i:05d}"), range(DEVICES)))
        settings = Settings(
            store_path=Path(tmp) / "dashboard.json", port=0, query_budget=10_000, cache_ttl=3600
        )
        with DashboardServer(settings, HubAccess(fleet)) as server:
            _timed("overview, cold", server, "")
            _timed("overview, warm", server, "")
            _timed("1,000-row query page, cold", server, PAGE)
            _timed("1,000-row query page, warm", server, PAGE)
            spent = server.dashboard.cache.budget.spent
            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(10) as pool:
                list(pool.map(lambda _: requests.get(server.url, timeout=60), range(100)))
            print(
                f"   100 overview views from 10 tabs at once (warm): "
                f"{time.perf_counter() - started:.2f} s, "
                f"{server.dashboard.cache.budget.spent - spent} hub queries"
            )

        started = time.perf_counter()
        for _, path in CHARTS:
            fleet.queries.group_by(path)
        print(
            f"   peer, the overview's {len(CHARTS)} GROUP BY queries through TwinManager: "
            f"{(time.perf_counter() - started) * 1000:,.0f} ms, {len(CHARTS)} hub queries"
        )
        started = time.perf_counter()
        rows, _ = fleet.queries.page("SELECT * FROM devices", page_size=1000)
        print(
            f"   peer, one 1,000-row page through TwinManager: "
            f"{(time.perf_counter() - started) * 1000:,.0f} ms, 1 hub query"
        )
        started = time.perf_counter()
        pages = 0
        token: str | None = None
        counts: Counter[str] = Counter()
        while True:
            rows, token = fleet.queries.page("SELECT * FROM devices", token, page_size=1000)
            pages += 1
            counts.update(str(r.get("connectionState")) for r in rows)
            if token is None:
                break
        print(
            f"   peer, a naive overview fetching every twin: "
            f"{(time.perf_counter() - started) * 1000:,.0f} ms, {pages} hub queries "
            f"for one chart of {sum(counts.values()):,} twins"
        )
