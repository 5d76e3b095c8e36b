"""`twinfleet job ...`: IoT Hub's scheduled jobs (twin updates and direct methods)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from twin_manager import Job
from twinfleet.cli.connecting import ConnectionOption, HubDirOption, connect

__all__ = ["app"]

app = typer.Typer(help="Scheduled jobs over twin queries.", no_args_is_help=True)


def _print(job: Job) -> None:
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
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Schedule a twin update job now."""
    fleet = connect(hub_dir, connection_string)
    job = fleet.schedule_twin_update(
        condition, desired=json.loads(desired) if desired else None,
        tags=json.loads(tags) if tags else None,
    )  # fmt: skip
    _print(fleet.wait_for_job(job.job_id, 3600) if wait else job)


@app.command("invoke")
def invoke(
    condition: str = typer.Argument(..., help="Query condition selecting devices."),
    method: str = typer.Argument(...),
    payload: str = typer.Option("null", help="JSON payload."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the job to finish."),
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Schedule a direct-method job now."""
    fleet = connect(hub_dir, connection_string)
    job = fleet.schedule_method(condition, method, json.loads(payload))
    _print(fleet.wait_for_job(job.job_id, 3600) if wait else job)


@app.command("show")
def show(
    job_id: str,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """A job's status and per-device results."""
    fleet = connect(hub_dir, connection_string)
    _print(fleet.get_job(job_id))
    table = Table("device", "status", "outcome")
    for result in fleet.job_results(job_id):
        method = result.method_result
        outcome = f"{method.status} {json.dumps(method.payload)}" if method else ""
        table.add_row(result.device_id, result.status, outcome)
    Console().print(table)


@app.command("list")
def list_jobs(
    hub_dir: Path | None = HubDirOption, connection_string: str | None = ConnectionOption
) -> None:
    """All scheduled jobs."""
    for job in connect(hub_dir, connection_string).list_jobs():
        _print(job)


@app.command("cancel")
def cancel(
    job_id: str,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Cancel a job: no new device is started."""
    _print(connect(hub_dir, connection_string).cancel_job(job_id))
