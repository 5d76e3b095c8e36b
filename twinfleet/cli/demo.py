"""`twinfleet demo`: the query engine at work on a generated fleet."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

import queries
from twinfleet import fleets

__all__ = ["demo"]

_QUERIES = [
    "SELECT * FROM devices WHERE tags.location.region = 'eu-west'",
    "SELECT * FROM devices WHERE tags.ring = 'canary' AND connectionState = 'Connected'",
    "SELECT * FROM devices WHERE properties.reported.firmware.fwUpdateStatus NIN ['current']",
    "SELECT * FROM devices WHERE properties.reported.health.crashCount > 3",
]
_GROUP = (
    "SELECT properties.reported.firmware.currentFwVersion AS version, COUNT() AS devices "
    "FROM devices GROUP BY properties.reported.firmware.currentFwVersion"
)


def demo(
    devices: int = typer.Option(1000, "--devices", min=1, help="How many twins to generate."),
) -> None:
    """Generate a fleet of twins and run IoT Hub queries over it."""
    console = Console()
    fleet = fleets.generate_fleet(devices)
    console.print(f"Generated [bold]{devices:,}[/] device twins.")
    for text in _QUERIES:
        started = time.perf_counter()
        rows = queries.parse(text, strict=True).run(fleet)
        elapsed = (time.perf_counter() - started) * 1000
        console.print(f"[cyan]{text}[/]\n  {len(rows):,} devices ({elapsed:.1f} ms)")
    console.print(f"[cyan]{_GROUP}[/]")
    table = Table()
    table.add_column("firmware version")
    table.add_column("devices", justify="right")
    for row in sorted(queries.parse(_GROUP).run(fleet), key=lambda r: str(r.get("version"))):
        table.add_row(str(row.get("version", "(undefined)")), str(row["devices"]))
    console.print(table)
    try:
        queries.parse("SELECT * FROM devices WHERE tags.ring = = 'canary'")
    except queries.QueryError as exc:
        console.print(f"[red]A bad query gets a clear error:[/]\n{exc}", highlight=False)
