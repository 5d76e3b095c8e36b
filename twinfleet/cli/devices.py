"""`twinfleet device ...` and `twinfleet twin ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from twin_manager import Device
from twinfleet.cli import lifecycle
from twinfleet.cli.connecting import ConnectionOption, HubDirOption, SchemeOption, connect

__all__ = ["device_app", "twin_app"]

device_app = typer.Typer(help="Device identities.", no_args_is_help=True)
twin_app = typer.Typer(help="Device twins.", no_args_is_help=True)
connection_string_app = typer.Typer(help="Device connection strings.", no_args_is_help=True)
device_app.add_typer(connection_string_app, name="connection-string")
lifecycle.register(device_app)  # import, export, retire, replace: the lifecycle of identities

AlwaysJsonOption = typer.Option(
    False, "--json", help="It prints JSON anyway; accepted so every data command takes --json."
)
TwinJsonOption = typer.Option(False, "--json", help="Print the updated twin as IoT Hub returns it.")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        typer.echo(f"error: {what} is not JSON: {exc}", err=True)
        raise typer.Exit(2) from None


@device_app.command("create")
def create(
    device_id: str,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
    disabled: bool = typer.Option(False, "--disabled"),
    as_json: bool = typer.Option(
        False, "--json", help="Print the identity (keys hidden) with its connectionString, as JSON."
    ),
) -> None:
    """Register a device (keys generated) and print its connection string."""
    fleet = connect(hub_dir, connection_string)
    device = fleet.devices.create(device_id, enabled=not disabled)
    text = fleet.devices.connection_string(device_id)
    typer.echo(json.dumps({**_identity(device), "connectionString": text}, indent=2)
               if as_json else text)  # fmt: skip


@device_app.command("list")
def list_devices(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of identities."),
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """List device identities (keys hidden)."""
    devices = connect(hub_dir, connection_string).devices.list()
    if as_json:
        typer.echo(json.dumps([_identity(device) for device in devices], indent=2))
        return
    table = Table("deviceId", "status", "connectionState", "lastActivityTime")
    for device in devices:
        table.add_row(
            device.device_id,
            device.status,
            device.connection_state or "",
            str(device.last_activity_time or ""),
        )
    Console().print(table)


@device_app.command("show")
def show_device(
    device_id: str,
    as_json: bool = AlwaysJsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Show one identity as JSON (keys hidden: see `device connection-string show`)."""
    device = connect(hub_dir, connection_string).devices.get(device_id)
    typer.echo(json.dumps(_identity(device), indent=2))


def _identity(device: Device) -> dict[str, Any]:
    return device.model_dump(mode="json", by_alias=True, exclude={"primary_key", "secondary_key"})


@connection_string_app.command("show")
def show_connection_string(
    device_id: str,
    key_type: str = typer.Option(
        "primary", "--key-type", help="Which of the device's keys: primary or secondary."
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"connectionString": ...}.'),
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Print a device's connection string (it holds the device's key: keep it secret)."""
    if key_type not in ("primary", "secondary"):
        typer.echo(f"error: --key-type is primary or secondary, not {key_type!r}", err=True)
        raise typer.Exit(2)
    fleet = connect(hub_dir, connection_string)
    text = fleet.devices.connection_string(device_id, key_type=key_type)
    typer.echo(json.dumps({"connectionString": text}) if as_json else text)


@device_app.command("delete")
def delete_device(
    device_id: str,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Delete a device and its twin."""
    connect(hub_dir, connection_string).devices.delete(device_id)
    typer.echo(f"deleted {device_id}")


@twin_app.command("show")
def show_twin(
    device_id: str,
    as_json: bool = AlwaysJsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Print a twin as JSON, exactly as IoT Hub returns it."""
    twin = connect(hub_dir, connection_string).twins.get(device_id)
    typer.echo(json.dumps(twin.to_json(), indent=2))


@twin_app.command("set-desired")
def set_desired(
    device_id: str,
    patch: str = typer.Argument(..., help="A JSON merge patch."),
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
    etag: str | None = typer.Option(None, help="Fail unless the twin still has it."),
    as_json: bool = TwinJsonOption,
) -> None:
    """Merge-patch desired properties (null deletes)."""
    fleet = connect(hub_dir, connection_string)
    twin = fleet.twins.update_desired(
        device_id, _json(patch, "the patch"), **({"if_match": etag} if etag else {})
    )
    if as_json:
        typer.echo(json.dumps(twin.to_json(), indent=2))
        return
    typer.echo(f"desired $version {twin.desired_version}, etag {twin.etag}")


@twin_app.command("set-tags")
def set_tags(
    device_id: str,
    patch: str = typer.Argument(..., help="A JSON merge patch."),
    as_json: bool = TwinJsonOption,
    scheme: str | None = SchemeOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Merge-patch tags (null deletes); checked against the fleet's scheme when one is given."""
    fleet = connect(hub_dir, connection_string, scheme)
    twin = fleet.twins.update_tags(device_id, _json(patch, "the patch"))
    if as_json:
        typer.echo(json.dumps(twin.to_json(), indent=2))
        return
    typer.echo(f"tags updated, etag {twin.etag}")
