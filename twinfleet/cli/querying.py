"""`twinfleet query` and `twinfleet invoke`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from twinfleet.cli.connecting import ConnectionOption, HubDirOption, SchemeOption, connect

__all__ = ["invoke", "query"]


def query(
    text: str = typer.Argument(..., help='An IoT Hub query, e.g. "SELECT * FROM devices".'),
    as_json: bool = typer.Option(False, "--json", help="Print rows as JSON lines."),
    scheme: str | None = SchemeOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Run a query (checked locally first) and print the rows."""
    fleet = connect(hub_dir, connection_string, scheme)
    fleet.queries.validate(text)
    rows = list(fleet.queries.run(text, page_size=1000))
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    if text.lstrip().upper().startswith("SELECT *") and " devices.jobs" not in text:
        table = Table("deviceId", "status", "connection", "tags")
        for row in rows:
            table.add_row(
                row["deviceId"],
                row.get("status", ""),
                row.get("connectionState", ""),
                json.dumps(row.get("tags", {}))[:60],
            )
    else:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        table = Table(*columns)
        for row in rows:
            table.add_row(
                *(
                    json.dumps(row.get(c)) if not isinstance(row.get(c), str) else row[c]
                    for c in columns
                )
            )
    Console().print(table)
    typer.echo(f"{len(rows)} rows", err=True)


def invoke(
    device_id: str,
    method: str,
    payload: str = typer.Option("null", "--payload", help="JSON payload."),
    timeout: int = typer.Option(30, help="Response timeout in seconds."),
    as_json: bool = typer.Option(
        False, "--json", help="It prints JSON anyway; accepted so every data command takes --json."
    ),
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Call a direct method and print the device's answer."""
    try:
        body = json.loads(payload)
    except json.JSONDecodeError as exc:
        typer.echo(f"error: --payload is not JSON: {exc}", err=True)
        raise typer.Exit(2) from None
    result = connect(hub_dir, connection_string).methods.invoke(
        device_id, method, body, timeout=timeout
    )
    typer.echo(json.dumps({"status": result.status, "payload": result.payload}))
