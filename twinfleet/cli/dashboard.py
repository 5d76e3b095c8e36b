"""`twinfleet dashboard`: serve the web UI for one hub until interrupted."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import typer

from twinfleet.cli.connecting import ConnectionOption, HubDirOption, connect
from twinfleet.dashboard import DashboardServer, HubAccess, Settings
from twinfleet.dashboard.settings import needs_token

__all__ = ["dashboard"]

TOKEN_ENV = "TWINFLEET_DASHBOARD_TOKEN"


def _default_store(hub_dir: Path | None) -> Path:
    if hub_dir is not None:
        return hub_dir / "dashboard.json"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "twinfleet" / "dashboard.json"


def dashboard(
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="TCP port (0: any free port)."),
    read_only: bool = typer.Option(False, "--read-only", help="Hide and refuse every action."),
    store: Path | None = typer.Option(
        None,
        "--store",
        help="Saved queries and alert rules (default: beside the hub, or "
        "~/.config/twinfleet/dashboard.json).",
    ),
    query_budget: float = typer.Option(
        12.0, "--query-budget", help="Hub queries a minute for all viewers together (S1: 20)."
    ),
    cache_ttl: float = typer.Option(15.0, "--cache-ttl", help="Seconds a query result is reused."),
    refresh: float = typer.Option(5.0, "--refresh", help="Seconds between live page updates."),
    alert_interval: float = typer.Option(
        60.0, "--alert-interval", help="Seconds between alert checks."
    ),
) -> None:
    """Serve a web dashboard of the fleet, its queries, devices, campaigns, jobs and alerts."""
    fleet = connect(hub_dir, connection_string)
    token = None
    if needs_token(host):
        token = os.environ.get(TOKEN_ENV) or Settings.new_token()
    settings = Settings(
        store_path=store or _default_store(hub_dir),
        host=host,
        port=port,
        read_only=read_only,
        token=token,
        query_budget=query_budget,
        cache_ttl=cache_ttl,
        refresh_seconds=refresh,
        alert_interval=alert_interval,
    )
    server = DashboardServer(settings, HubAccess(fleet)).start()
    typer.echo(f"twinfleet dashboard listening on {server.url}")
    if token is not None:
        typer.echo(f"Open it with its access token:\n    {server.url_with_token}")
    typer.echo("Press Ctrl+C to stop.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        server.close()
