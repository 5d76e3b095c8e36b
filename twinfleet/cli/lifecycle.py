"""`twinfleet device import|export|retire|replace`: devices in bulk, and out of service."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from patterns import api, retiring
from patterns.builtin.retire import Retire
from twinfleet import devicefiles, exporting, importing
from twinfleet.cli.connecting import (
    ConnectionOption,
    DpsConnectionOption,
    DpsDirOption,
    HubDirOption,
    connect,
    with_provisioning,
)
from twinfleet.cli.exit_codes import ExitCode

__all__ = ["export_devices", "import_devices", "register", "replace", "retire"]

JsonOption = typer.Option(False, "--json", help="Print the result as JSON.")


def _count_rows(path: Path, csv_format: bool) -> int:
    with path.open(encoding="utf-8") as source:
        rows = sum(1 for line in source if line.strip())
    return max(0, rows - 1) if csv_format else rows


def import_devices(
    file: Path = typer.Argument(..., help="A device file: JSON lines, or CSV (*.csv)."),
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Register the devices of a file (keys made unless given), with their tags and desired
    properties, 100 devices a request. Run it again to resume: devices that exist are left as
    they are, and those that differ from their rows are named. Bad rows are named by line."""
    csv_format = file.suffix.lower() == ".csv"
    try:
        total = _count_rows(file, csv_format)
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: cannot read {file}: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    fleet = connect(hub_dir, connection_string)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn())
    with (
        file.open(encoding="utf-8") as source,
        Progress(*columns, console=Console(stderr=True), transient=True) as progress,
    ):
        task = progress.add_task("import", total=total)
        report = importing.import_rows(
            fleet,
            devicefiles.read_rows(source, csv_format=csv_format),
            on_progress=lambda done: progress.advance(task, done),
        )
    if as_json:
        typer.echo(json.dumps(_report_json(report), indent=2))
    else:
        for line in report.lines():
            typer.echo(line)
    if report.failed or report.partial:
        raise typer.Exit(ExitCode.ERROR)


def _report_json(report: importing.ImportReport) -> dict[str, object]:
    def rows(entries: list[tuple[int, str | None, str]] | list[tuple[int, str, str]]) -> object:
        return [{"line": line, "deviceId": device, "reason": why} for line, device, why in entries]

    return {
        "created": report.created,
        "unchanged": report.unchanged,
        "differing": rows(report.differing),
        "failed": rows(report.failed),
        "partial": rows(report.partial),
    }


def export_devices(
    query: str | None = typer.Option(
        None, "--query", help="Only the devices this condition selects, e.g. \"tags.site = 'a'\"."
    ),
    include_keys: bool = typer.Option(
        False, "--include-keys", help="Include each device's keys (secrets: guard the file)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Accepted for symmetry: the output is always JSON lines."
    ),
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Write devices as JSON lines (what `device import` reads) to standard output."""
    if query is not None and query.lstrip().upper().startswith("SELECT"):
        typer.echo("error: --query takes a condition (what follows WHERE), not a whole query",
                   err=True)  # fmt: skip
        raise typer.Exit(ExitCode.USAGE)
    fleet = connect(hub_dir, connection_string)
    for row in exporting.export_rows(fleet, query, include_keys=include_keys):
        devicefiles.write_row(sys.stdout, row, include_keys=include_keys)


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "twinfleet"


def _report(device_id: str, verdict: api.Verdict, *, as_json: bool) -> None:
    if as_json:
        outcome = {"deviceId": device_id, "outcome": str(verdict.outcome)}
        typer.echo(json.dumps({**outcome, "reason": verdict.reason, "note": verdict.note}))
    if verdict.outcome == api.Outcome.FAILED:
        if not as_json:
            typer.echo(f"error: {verdict.reason}", err=True)
        raise typer.Exit(ExitCode.ERROR)
    if not as_json:
        typer.echo(verdict.note or "retired")


def retire(
    device_id: str,
    reason: str = typer.Option(..., "--reason", help="Why: kept with the device's record."),
    keep_twin: bool = typer.Option(
        False, "--keep-twin", help="Keep the disabled identity and twin instead of deleting them."
    ),
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
    dps_dir: Path | None = DpsDirOption,
    dps_connection_string: str | None = DpsConnectionOption,
) -> None:
    """Take a device out of service for good: tag it retired, disable it, block its
    registration in the DPS (with --dps-dir), archive its twin and delete it (or --keep-twin)."""
    fleet = with_provisioning(connect(hub_dir, connection_string), dps_dir, dps_connection_string)
    params = Retire(reason=reason, by=_who(), keep_twin=keep_twin)
    _report(device_id, retiring.retire_device(fleet, device_id, params), as_json=as_json)


def replace(
    old: str = typer.Argument(..., help="The failed device."),
    new: str = typer.Argument(..., help="Its replacement (registered or provisioned already)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (default: replaced by NEW)."),
    keep_twin: bool = typer.Option(False, "--keep-twin", help="Keep the old device's twin."),
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
    dps_dir: Path | None = DpsDirOption,
    dps_connection_string: str | None = DpsConnectionOption,
) -> None:
    """Move a failed device's tags and desired properties to its replacement (which then
    converges to the same configuration and firmware), then retire the old device."""
    fleet = with_provisioning(connect(hub_dir, connection_string), dps_dir, dps_connection_string)
    params = Retire(reason=reason or f"replaced by {new}", by=_who(), keep_twin=keep_twin)
    verdict = retiring.replace_device(fleet, old, new, params)
    if not as_json:
        typer.echo(f"{new} took over the tags and desired properties of {old}")
    _report(old, verdict, as_json=as_json)


def register(app: typer.Typer) -> None:
    """Add these commands to `app` (the `device` group)."""
    app.command("import")(import_devices)
    app.command("export")(export_devices)
    app.command("retire")(retire)
    app.command("replace")(replace)
