"""`twinfleet campaign ...`: create, plan, watch and steer campaigns."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from patterns.campaigns import (
    Campaign,
    CampaignStatus,
    DeviceState,
    plan,
    records,
)
from twin_manager import HubUnavailable, TwinManager
from twinfleet.cli import exit_codes
from twinfleet.cli.connecting import (
    ConnectionOption,
    DpsConnectionOption,
    DpsDirOption,
    HubDirOption,
    connect,
    with_provisioning,
)
from twinfleet.cli.creating import create_app

__all__ = ["app"]

log = logging.getLogger(__name__)

app = typer.Typer(
    help="Safe rollouts of firmware, configuration, reboots and resets.", no_args_is_help=True
)
app.add_typer(create_app, name="create")

JsonOption = typer.Option(False, "--json", help="Print JSON.")


def _print_status(status: CampaignStatus) -> None:
    table = Table(title=f"campaign {status.campaign_id}: {status.status}")
    table.add_column("state")
    table.add_column("devices", justify="right")
    for state, count in sorted(status.counts.items()):
        table.add_row(state, str(count))
    console = Console()
    console.print(table)
    for reason, count in sorted(status.reasons.items(), key=lambda r: -r[1])[:5]:
        console.print(f"  {count} x {reason}", soft_wrap=True)
    for line in status.log[-10:]:
        console.print(f"  [dim]{line}[/]", highlight=False, soft_wrap=True)


@app.command("status")
def status(
    campaign_id: str,
    devices: bool = typer.Option(False, "--devices", help="List each device and where it is."),
    state: DeviceState | None = typer.Option(
        None, "--state", help="With --devices: only the devices in this state."
    ),
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Counts per state, the failure reasons most seen, and the execution log; with --devices,
    every device's state, group, step, attempt and failure reason (whole)."""
    campaign = Campaign.load(connect(hub_dir, connection_string), campaign_id)
    if devices or state is not None:
        listed = campaign.devices(state)
        if as_json:
            typer.echo(json.dumps(
                [{"deviceId": d, **p.model_dump(mode="json", by_alias=True)} for d, p in listed],
                indent=2))  # fmt: skip
            return
        table = Table("deviceId", "state", "group", "step", "attempt", "reason")
        for device_id, progress in listed:
            table.add_row(device_id, progress.state, progress.group, str(progress.step),
                          str(progress.attempt), progress.reason or "")  # fmt: skip
        Console().print(table)
        return
    current = campaign.status()
    if as_json:
        typer.echo(json.dumps(_status_json(current), indent=2))
        return
    _print_status(current)


def _status_json(status: CampaignStatus) -> dict[str, Any]:
    return {"id": status.campaign_id, "status": str(status.status), "counts": status.counts,
            "reasons": status.reasons, "log": status.log}  # fmt: skip


@app.command("plan")
def plan_command(
    campaign_id: str,
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Dry run: which devices, in which group and wave, and when, touching nothing."""
    fleet = connect(hub_dir, connection_string)
    projected = plan(fleet, Campaign.load(fleet, campaign_id).spec)
    if as_json:
        devices = [
            {"deviceId": d.device_id, "group": d.group, "wave": d.wave,
             "startsAfterSeconds": d.starts_after_seconds}
            for d in projected.devices
        ]  # fmt: skip
        whole = {"devices": devices, "groups": projected.groups,
                 "durationSeconds": projected.duration_seconds}  # fmt: skip
        typer.echo(json.dumps(whole, indent=2))
        return
    table = Table("device", "group", "wave", "starts after (s)")
    for device in projected.devices:
        table.add_row(
            device.device_id, device.group, str(device.wave), f"{device.starts_after_seconds:g}"
        )
    Console().print(table)
    typer.echo(
        f"{len(projected.devices)} devices, groups {projected.groups}, "
        f"about {projected.duration_seconds:g} s to admit all"
    )


@app.command("run")
def run(
    campaign_id: str,
    poll: float = typer.Option(2.0, help="Seconds between passes."),
    once: bool = typer.Option(False, "--once", help="One pass only, then print the status."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="No progress bars; print the final status as JSON (as `campaign status --json`).",
    ),
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
    dps_dir: Path | None = DpsDirOption,
    dps_connection_string: str | None = DpsConnectionOption,
) -> None:
    """Drive the campaign until it completes, aborts or is cancelled (any process may).
    A campaign that retires devices blocks them in the DPS named by --dps-dir.

    Exits 0 when every device succeeded, 3 when the campaign aborted, 4 when it completed with
    failed or timed-out devices, 5 when it was cancelled (1: an error, 2: a usage error). With
    --once: one pass, exiting so only when the campaign is over.
    """
    fleet = with_provisioning(connect(hub_dir, connection_string), dps_dir, dps_connection_string)
    if once:
        campaign = Campaign.load(fleet, campaign_id)
    else:  # a controller rides over an outage at its start as it does over one later
        campaign = _load_when_reachable(fleet, campaign_id, poll)
    show_final = (
        (lambda s: typer.echo(json.dumps(_status_json(s), indent=2)))
        if as_json
        else (_print_status)
    )
    if once:
        status = campaign.tick()
        show_final(status)
        if status.settled:
            _exit_for(campaign_id, status)
        return
    if as_json:
        final = campaign.run(poll=poll)
        show_final(final)
        _exit_for(campaign_id, final)
        return
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn()) as bars:
        tasks: dict[str, Any] = {}

        def show(status: CampaignStatus) -> None:
            total = sum(status.counts.values())
            for state, count in status.counts.items():
                if state not in tasks:
                    tasks[state] = bars.add_task(state, total=total)
                bars.update(tasks[state], completed=count, total=total)

        final = campaign.run(poll=poll, on_tick=show)
    _print_status(final)
    _exit_for(campaign_id, final)


def _load_when_reachable(fleet: TwinManager, campaign_id: str, poll: float) -> Campaign:
    """The campaign, read again every `poll` seconds while the hub cannot be reached."""
    while True:
        try:
            return Campaign.load(fleet, campaign_id)
        except HubUnavailable as exc:
            log.warning("campaign %s: %s; trying again in %g s", campaign_id, exc, poll)
            time.sleep(poll)


def _exit_for(campaign_id: str, final: CampaignStatus) -> None:
    code = exit_codes.campaign_exit_code(final.status, final.failed)
    if code:
        typer.echo(f"campaign {campaign_id} {final.status} with {final.failed} devices failed "
                   f"(exit code {int(code)})", err=True)  # fmt: skip
        raise typer.Exit(int(code))


def _steering_command(action: str, help_text: str) -> None:
    """Register `campaign <action> ID`, which calls `Campaign.<action>()`."""

    def command(
        campaign_id: str,
        as_json: bool = JsonOption,
        hub_dir: Path | None = HubDirOption,
        connection_string: str | None = ConnectionOption,
    ) -> None:
        campaign = Campaign.load(connect(hub_dir, connection_string), campaign_id)
        getattr(campaign, action)()
        if as_json:
            typer.echo(json.dumps({"id": campaign_id, "status": str(campaign.record.status)}))
            return
        typer.echo(f"campaign {campaign_id}: {campaign.record.status}")

    app.command(action, help=help_text)(command)


_steering_command("pause", "Stop admitting devices until resumed.")
_steering_command("resume", "Carry on after a pause.")
_steering_command("cancel", "Cancel every device not yet started.")
_steering_command("rerun", "Queue failed, timed-out and cancelled devices again at their step.")
_steering_command("forget", "Delete a finished campaign and its tags on every device.")


@app.command("list")
def list_campaigns(
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Every campaign on the hub and its status."""
    fleet = connect(hub_dir, connection_string)
    if as_json:
        typer.echo(json.dumps([{"id": r.spec.id, "pattern": r.spec.pattern.kind,
                                "status": str(r.status), "target": r.spec.target}
                               for r in records.list_records(fleet)], indent=2))  # fmt: skip
        return
    table = Table("campaign", "pattern", "status", "target")
    for record in records.list_records(fleet):
        spec = record.spec
        table.add_row(spec.id, spec.pattern.kind, str(record.status), spec.target)
    Console().print(table)
