"""`twinfleet dashboard`: a web UI over `twin_manager` and `patterns.campaigns`.

Server-rendered pages (Jinja, every value escaped) with two vendored scripts (htmx, Chart.js; no
CDN), one query cache and budget shared by every viewer (`caching`), an access token off
127.0.0.1 and CSRF tokens on every action (`security`), saved queries and alert rules
(`storage`, `alerting`), and Prometheus metrics. It reaches the hub only through `hub_access`.

    with DashboardServer(Settings(store_path=path), HubAccess(fleet)) as server:
        print(server.url_with_token)
"""

from twinfleet.dashboard.caching import BudgetSpent, QueryBudget, QueryCache
from twinfleet.dashboard.hub_access import HubAccess
from twinfleet.dashboard.serving import DashboardServer
from twinfleet.dashboard.settings import Settings

__all__ = ["BudgetSpent", "DashboardServer", "HubAccess", "QueryBudget", "QueryCache", "Settings"]
