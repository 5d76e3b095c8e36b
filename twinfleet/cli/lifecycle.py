"""`twinfleet device import|export|retire|replace`: devices in bulk, and out of service."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from twinfleet import devicefiles, exporting, importing
from twinfleet.cli.connecting import ConnectionOption, HubDirOption, connect
from twinfleet.cli.devices import device_app
from twinfleet.cli.exit_codes import ExitCode

__all__ = ["export_devices", "import_devices"]


def _count_rows(path: Path, csv_format: bool) -> int:
    with path.open(encoding="utf-8") as source:
        rows = sum(1 for line in source if line.strip())
    return max(0, rows - 1) if csv_format else rows


@device_app.command("import")
def import_devices(
    file: Path = typer.Argument(..., help="A device file: JSON lines, or CSV (*.csv)."),
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
    for line in report.lines():
        typer.echo(line)
    if report.failed or report.partial:
        raise typer.Exit(ExitCode.ERROR)


@device_app.command("export")
def export_devices(
    query: str | None = typer.Option(
        None, "--query", help="Only the devices this condition selects, e.g. \"tags.site = 'a'\"."
    ),
    include_keys: bool = typer.Option(
        False, "--include-keys", help="Include each device's keys (secrets: guard the file)."
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
