"""`twinfleet job ...`: IoT Hub's scheduled jobs (twin updates and direct methods)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from twin_manager import Job, TwinManager
from twinfleet.cli.connecting import ConnectionOption, HubDirOption, SchemeOption, connect

__all__ = ["app"]

app = typer.Typer(help="Scheduled jobs over twin queries.", no_args_is_help=True)


AllowEmptyOption = typer.Option(
    False, "--allow-empty", help="Schedule the job even if the condition matches no device."
)
JsonOption = typer.Option(False, "--json", help="Print the job as IoT Hub returns it.")


def _targets(fleet: TwinManager, condition: str, allow_empty: bool) -> None:
    """Refuse a condition that matches no device, unless the user says it may."""
    if allow_empty:
        return
    every = condition.strip() == "*"  # IoT Hub's "every device"
    if fleet.queries.count(None if every else condition) == 0:
        typer.echo(
            f"error: the condition matches no device: {condition}\n"
            "  (check its paths and quoting with `twinfleet query`, or pass --allow-empty)",
            err=True,
        )
        raise typer.Exit(1)


def _print(job: Job, as_json: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(job.model_dump(mode="json", by_alias=True), indent=2))
        return
    stats = job.statistics
    typer.echo(f"job {job.job_id} ({job.type}): {job.status}; devices {stats.device_count}, "
               f"succeeded {stats.succeeded_count}, failed {stats.failed_count}, "
               f"running {stats.running_count}, pending {stats.pending_count}")  # fmt: skip


@app.command("update-twin")
def update_twin(
    condition: str = typer.Argument(..., help="Query condition selecting devices."),
    desired: str | None = typer.Option(None, help="Desired patch (JSON)."),
    tags: str | None = typer.Option(None, help="Tags patch (JSON)."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the job to finish."),
    allow_empty: bool = AllowEmptyOption,
    as_json: bool = JsonOption,
    scheme: str | None = SchemeOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Schedule a twin update job now."""
    fleet = connect(hub_dir, connection_string, scheme)
    _targets(fleet, condition, allow_empty)
    job = fleet.jobs.schedule_twin_update(
        condition, desired=json.loads(desired) if desired else None,
        tags=json.loads(tags) if tags else None,
    )  # fmt: skip
    _print(fleet.jobs.wait(job.job_id, 3600) if wait else job, as_json)


@app.command("invoke")
def invoke(
    condition: str = typer.Argument(..., help="Query condition selecting devices."),
    method: str = typer.Argument(...),
    payload: str = typer.Option("null", help="JSON payload."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the job to finish."),
    allow_empty: bool = AllowEmptyOption,
    as_json: bool = JsonOption,
    scheme: str | None = SchemeOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Schedule a direct-method job now."""
    fleet = connect(hub_dir, connection_string, scheme)
    _targets(fleet, condition, allow_empty)
    job = fleet.jobs.schedule_method(condition, method, json.loads(payload))
    _print(fleet.jobs.wait(job.job_id, 3600) if wait else job, as_json)


@app.command("show")
def show(
    job_id: str,
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """A job's status and per-device results."""
    fleet = connect(hub_dir, connection_string)
    job = fleet.jobs.get(job_id)
    if as_json:
        results = [r.model_dump(mode="json", by_alias=True) for r in fleet.jobs.results(job_id)]
        typer.echo(json.dumps({**job.model_dump(mode="json", by_alias=True),
                               "deviceResults": results}, indent=2))  # fmt: skip
        return
    _print(job)
    table = Table("device", "status", "outcome")
    for result in fleet.jobs.results(job_id):
        method = result.method_result
        outcome = f"{method.status} {json.dumps(method.payload)}" if method else ""
        table.add_row(result.device_id, result.status, outcome)
    Console().print(table)


@app.command("list")
def list_jobs(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of jobs."),
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """All scheduled jobs."""
    jobs = connect(hub_dir, connection_string).jobs.list()
    if as_json:
        typer.echo(json.dumps([j.model_dump(mode="json", by_alias=True) for j in jobs], indent=2))
        return
    for job in jobs:
        _print(job)


@app.command("cancel")
def cancel(
    job_id: str,
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Cancel a job: no new device is started."""
    _print(connect(hub_dir, connection_string).jobs.cancel(job_id), as_json)
