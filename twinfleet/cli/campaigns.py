"""`twinfleet campaign ...`: create, plan, watch and steer campaigns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from patterns.campaigns import (
    AbortCriteria,
    Campaign,
    CampaignSpec,
    CampaignStatus,
    ConfigurationChange,
    FactoryReset,
    FirmwareUpdate,
    Group,
    Reboot,
    Retries,
    Rollout,
    plan,
    records,
    specs,
)
from twinfleet.cli import exit_codes
from twinfleet.cli.connecting import (
    ConnectionOption,
    HubDirOption,
    connect,
    connect_artifacts,
)
from twinfleet.cli.durations import parse_duration

__all__ = ["app"]

app = typer.Typer(
    help="Safe rollouts of firmware, configuration, reboots and resets.", no_args_is_help=True
)
create_app = typer.Typer(help="Create a campaign.", no_args_is_help=True)
app.add_typer(create_app, name="create")

TargetOption = typer.Option(..., "--target", help="Twin query condition selecting devices.")
CanaryOption = typer.Option(None, "--canary", help="Condition of a canary group that goes first.")
RateOption = typer.Option(60.0, "--rate", help="Devices admitted per minute.")
RampOption = typer.Option(1.0, "--ramp-factor", help="Multiply the rate after every 10 successes.")
AbortOption = typer.Option(None, "--abort-percent", help="Abort above this failure percentage.")
RetriesOption = typer.Option(1, "--attempts", help="Attempts per device (1: no retry).")
BackoffOption = typer.Option(
    30.0, "--backoff", min=0, help="Seconds before the first retry; doubles for each next one."
)
MinFinishedOption = typer.Option(
    5, "--min-finished", min=1,
    help="Finished devices needed before --abort-percent is judged.",
)  # fmt: skip
TimeoutOption = typer.Option(600.0, "--timeout", help="Seconds a device may stay in progress.")
ContinuousOption = typer.Option(False, "--continuous", help="Also admit devices that match later.")


def _create(
    pattern: Any,
    campaign_id: str,
    target: str,
    canary: str | None,
    rate: float,
    ramp: float,
    abort_percent: float | None,
    attempts: int,
    timeout: float,
    continuous: bool,
    hub_dir: Path | None,
    connection_string: str | None,
    *,
    backoff: float = 30.0,
    min_finished: int = 5,
) -> None:
    spec = CampaignSpec(
        id=campaign_id,
        pattern=pattern,
        target=target,
        mode="continuous" if continuous else "snapshot",
        rollout=Rollout(per_minute=rate, ramp_factor=ramp),
        groups=(Group(name="canary", condition=canary),) if canary else (),
        abort=(
            AbortCriteria(failure_percent=abort_percent, min_finished=min_finished)
            if abort_percent
            else None
        ),
        retries=Retries(max_attempts=attempts, backoff_seconds=backoff),
        timeout_seconds=timeout,
    )
    Campaign.create(connect(hub_dir, connection_string), spec)
    typer.echo(
        f"campaign {campaign_id} created; run it with `twinfleet campaign run {campaign_id}`"
    )


@create_app.command("firmware")
def create_firmware(
    campaign_id: str,
    version: str = typer.Option(...),
    image: Path | None = typer.Option(
        None,
        "--image",
        exists=True,
        dir_okay=False,
        readable=True,
        help="Upload this image to the hub and fill in its URL, size and SHA-256.",
    ),
    image_ttl: int = typer.Option(
        "30d",
        "--image-ttl",
        parser=parse_duration,
        help="How long the uploaded image's download URL works (devices retrying need it).",
    ),
    url: str | None = typer.Option(
        None, help="Where devices download the image (not with --image)."
    ),
    sha256: str | None = typer.Option(None, help="SHA-256 of the image, hex (with --url)."),
    signature: str | None = typer.Option(
        None, help="The image's signature, from 'twinfleet firmware sign' (base64)."
    ),
    security_floor: str | None = typer.Option(
        None, help="The security floor the image was signed with, if any."
    ),
    target: str = TargetOption,
    canary: str | None = CanaryOption,
    rate: float = RateOption,
    ramp: float = RampOption,
    abort_percent: float | None = AbortOption,
    attempts: int = RetriesOption,
    backoff: float = BackoffOption,
    min_finished: int = MinFinishedOption,
    timeout: float = TimeoutOption,
    continuous: bool = ContinuousOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """A firmware update campaign: give --image FILE, or --url and --sha256 of a hosted image."""
    size: int | None = None
    if image is not None:
        if url is not None or sha256 is not None:
            raise typer.BadParameter("give --image, or --url and --sha256, not both")
        uploaded = connect_artifacts(hub_dir, connection_string).upload(image, ttl=image_ttl)
        url, sha256, size = uploaded.url, uploaded.sha256, uploaded.size
        typer.echo(f"uploaded {image.name} ({size} bytes, sha256 {sha256})")
    if url is None or sha256 is None:
        raise typer.BadParameter("give --image FILE, or both --url and --sha256")
    pattern = FirmwareUpdate(
        version=version, url=url, sha256=sha256, size=size, signature=signature,
        security_floor=security_floor,
    )  # fmt: skip
    _create(
        pattern,
        campaign_id,
        target,
        canary,
        rate,
        ramp,
        abort_percent,
        attempts,
        timeout,
        continuous,
        hub_dir,
        connection_string,
        backoff=backoff,
        min_finished=min_finished,
    )


@create_app.command("config")
def create_config(
    campaign_id: str,
    settings: str = typer.Option(..., help="Settings as a JSON object."),
    config_version: int = typer.Option(
        ..., "--config-version", help="The new configuration version."
    ),
    target: str = TargetOption,
    canary: str | None = CanaryOption,
    rate: float = RateOption,
    ramp: float = RampOption,
    abort_percent: float | None = AbortOption,
    attempts: int = RetriesOption,
    backoff: float = BackoffOption,
    min_finished: int = MinFinishedOption,
    timeout: float = TimeoutOption,
    continuous: bool = ContinuousOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """A configuration change campaign."""
    pattern = ConfigurationChange(version=config_version, settings=json.loads(settings))
    _create(
        pattern,
        campaign_id,
        target,
        canary,
        rate,
        ramp,
        abort_percent,
        attempts,
        timeout,
        continuous,
        hub_dir,
        connection_string,
        backoff=backoff,
        min_finished=min_finished,
    )


@create_app.command("reboot")
def create_reboot(
    campaign_id: str,
    delay: float = typer.Option(0.0),
    target: str = TargetOption,
    canary: str | None = CanaryOption,
    rate: float = RateOption,
    abort_percent: float | None = AbortOption,
    min_finished: int = MinFinishedOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """A reboot campaign."""
    _create(
        Reboot(delay=delay),
        campaign_id,
        target,
        canary,
        rate,
        1.0,
        abort_percent,
        1,
        600,
        False,
        hub_dir,
        connection_string,
        min_finished=min_finished,
    )


@create_app.command("factory-reset")
def create_factory_reset(
    campaign_id: str,
    target: str = TargetOption,
    canary: str | None = CanaryOption,
    rate: float = RateOption,
    abort_percent: float | None = AbortOption,
    min_finished: int = MinFinishedOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """A factory reset campaign."""
    _create(
        FactoryReset(),
        campaign_id,
        target,
        canary,
        rate,
        1.0,
        abort_percent,
        1,
        600,
        False,
        hub_dir,
        connection_string,
        min_finished=min_finished,
    )


def _print_status(status: CampaignStatus) -> None:
    table = Table(title=f"campaign {status.campaign_id}: {status.status}")
    table.add_column("state")
    table.add_column("devices", justify="right")
    for state, count in sorted(status.counts.items()):
        table.add_row(state, str(count))
    console = Console()
    console.print(table)
    for reason, count in sorted(status.reasons.items(), key=lambda r: -r[1])[:5]:
        console.print(f"  {count} x {reason}")
    for line in status.log[-10:]:
        console.print(f"  [dim]{line}[/]", highlight=False)


@app.command("status")
def status(
    campaign_id: str,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Counts per state, the failure reasons most seen, and the execution log."""
    _print_status(Campaign.load(connect(hub_dir, connection_string), campaign_id).status())


@app.command("plan")
def plan_command(
    campaign_id: str,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Dry run: which devices, in which group and wave, and when, touching nothing."""
    fleet = connect(hub_dir, connection_string)
    projected = plan(fleet, Campaign.load(fleet, campaign_id).spec)
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
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Drive the campaign until it completes, aborts or is cancelled (any process may).

    Exits 0 when every device succeeded, 3 when the campaign aborted, 4 when it completed with
    failed or timed-out devices, 5 when it was cancelled (1: an error, 2: a usage error).
    """
    campaign = Campaign.load(connect(hub_dir, connection_string), campaign_id)
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
    code = exit_codes.campaign_exit_code(final.status, final.failed)
    if code:
        typer.echo(f"campaign {campaign_id} {final.status} with {final.failed} devices failed "
                   f"(exit code {int(code)})", err=True)  # fmt: skip
        raise typer.Exit(int(code))


def _steering_command(action: str, help_text: str) -> None:
    """Register `campaign <action> ID`, which calls `Campaign.<action>()`."""

    def command(
        campaign_id: str,
        hub_dir: Path | None = HubDirOption,
        connection_string: str | None = ConnectionOption,
    ) -> None:
        campaign = Campaign.load(connect(hub_dir, connection_string), campaign_id)
        getattr(campaign, action)()
        typer.echo(f"campaign {campaign_id}: {campaign.record.status}")

    app.command(action, help=help_text)(command)


_steering_command("pause", "Stop admitting devices until resumed.")
_steering_command("resume", "Carry on after a pause.")
_steering_command("cancel", "Cancel every device not yet started.")
_steering_command("rerun", "Queue failed, timed-out and cancelled devices again at their step.")
_steering_command("forget", "Delete a finished campaign and its tags on every device.")


@app.command("list")
def list_campaigns(
    hub_dir: Path | None = HubDirOption, connection_string: str | None = ConnectionOption
) -> None:
    """Every campaign on the hub and its status."""
    fleet = connect(hub_dir, connection_string)
    table = Table("campaign", "pattern", "status", "target")
    for twin in fleet.query_twins(f"IS_DEFINED(tags.{records.RECORD_TAG})"):
        data = twin.tags[records.RECORD_TAG]
        spec = specs.CampaignSpec.model_validate(data["spec"])
        table.add_row(spec.id, spec.pattern.kind, str(data.get("status")), spec.target)
    Console().print(table)
