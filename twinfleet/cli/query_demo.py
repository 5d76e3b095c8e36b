"""`twinfleet query-demo`: the query engine at work on a generated fleet of device twins."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

import queries
from twinfleet import fleets

__all__ = ["query_demo"]

_WHERE = [
    "SELECT * FROM devices WHERE tags.location.region = 'eu-west'",
    "SELECT * FROM devices WHERE tags.ring = 'canary' AND connectionState = 'Connected'",
    "SELECT * FROM devices WHERE properties.reported.firmware.fwUpdateStatus NIN ['current']",
    "SELECT * FROM devices WHERE properties.reported.telemetryConfig.sendFrequencyInSecs >= 300 "
    "AND tags.model IN ['gw-100', 'gw-200']",
    "SELECT * FROM devices WHERE is_defined(properties.reported.connectivity) "
    "AND properties.reported.health.crashCount > 3",
]
_GROUP = (
    "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices, "
    "AVG(properties.reported.telemetry.battery) AS battery FROM devices "
    "GROUP BY properties.reported.telemetryConfig.status"
)
_BAD = [
    "SELECT * FROM devices WHERE tags.ring = = 'canary'",
    "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'device-00')",
]


def _timed(query: queries.Query, fleet: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
    started = time.perf_counter()
    rows = query.run(fleet)
    return rows, (time.perf_counter() - started) * 1000


def query_demo(
    devices: int = typer.Option(1000, "--devices", min=1, help="How many twins to generate."),
    seed: int = typer.Option(7, "--seed", help="The fleet is the same for the same seed."),
) -> None:
    """Generate a fleet of device twins and run IoT Hub queries over it."""
    console = Console()
    started = time.perf_counter()
    fleet = fleets.generate_fleet(devices, seed=seed)
    elapsed = (time.perf_counter() - started) * 1000
    console.print(f"Generated [bold]{devices:,}[/] device twins in {elapsed:.0f} ms.\n")

    matches = Table(title="WHERE queries", title_justify="left")
    matches.add_column("query", overflow="fold")
    matches.add_column("devices", justify="right")
    matches.add_column("ms", justify="right")
    for text in _WHERE:
        rows, ms = _timed(queries.parse(text, strict=True), fleet)
        matches.add_row(text, f"{len(rows):,}", f"{ms:.1f}")
    console.print(matches)

    rows, ms = _timed(queries.parse(_GROUP), fleet)
    console.print(f"\n{_GROUP}", style="cyan", markup=False, highlight=False)
    groups = Table(title=f"GROUP BY ({ms:.1f} ms)", title_justify="left")
    groups.add_column("status")
    groups.add_column("numberOfDevices", justify="right")
    groups.add_column("average battery %", justify="right")
    for row in sorted(rows, key=lambda r: -int(r["numberOfDevices"])):
        battery = row.get("battery")
        groups.add_row(
            str(row.get("status", "(undefined)")),
            f"{row['numberOfDevices']:,}",
            "-" if battery is None else f"{battery:.1f}",
        )
    console.print(groups)

    console.print("\nA query IoT Hub would refuse gets an error that says where and why:")
    for text in _BAD:
        try:
            queries.parse(text, strict=True)
        except queries.QueryError as exc:
            console.print(str(exc), style="red", markup=False, highlight=False)
