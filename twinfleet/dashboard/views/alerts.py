"""`/alerts`: rules over saved queries, their states, and the banner every page shows."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from pydantic import ValidationError

from twinfleet.dashboard import storage
from twinfleet.dashboard.context import DASHBOARD

__all__ = ["alerts", "banner", "delete_alert", "save_alert", "webhook_host"]


def webhook_host(url: str | None) -> str:
    """Only the host of a webhook is shown: its path often carries a secret."""
    return urlsplit(url).netloc if url else ""


async def alerts(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    return dash.page(
        request,
        "_alerts_live.html" if "HX-Request" in request.headers else "alerts.html",
        title="Alerts",
        states=dash.alerts.states,
        saved=dash.store.queries,
        webhook_host=webhook_host,
        error=request.query.get("error"),
    )


async def banner(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    return dash.page(request, "_banner.html")


async def save_alert(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    form = await request.post()
    try:
        minutes = float(str(form.get("for_minutes") or 0))
        rule = storage.AlertRule(
            name=str(form.get("name", "")).strip(),
            query=str(form.get("query", "")),
            operator=str(form.get("operator", ">")),
            threshold=float(str(form.get("threshold") or 0)),
            for_seconds=minutes * 60,
            webhook=str(form.get("webhook", "")).strip() or None,
        )
        dash.store.save_alert(rule)
    except ValidationError as exc:
        raise web.HTTPBadRequest(text=f"Not saved: {exc.errors()[0]['msg']}") from None
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"Not saved: {exc}") from None
    raise web.HTTPSeeOther("/alerts")


async def delete_alert(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    form = await request.post()
    dash.store.delete_alert(str(form.get("name", "")))
    raise web.HTTPSeeOther("/alerts")
