"""How every command finds its hub: `--hub-dir` (a local hub's data directory) or a connection
string (`--connection-string`, or `TWINFLEET_CONNECTION_STRING`); and the fleet's metadata
scheme, where a command writes tags or targets devices (`--scheme`, or `TWINFLEET_SCHEME`)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from twin_manager import ArtifactStore, ProvisioningService, TwinManager, load_scheme, read_hub_dir

__all__ = [
    "ConnectionOption",
    "DpsConnectionOption",
    "DpsDirOption",
    "HubDirOption",
    "SchemeOption",
    "connect",
    "connect_artifacts",
    "with_provisioning",
]

HubDirOption = typer.Option(None, "--hub-dir", help="A running local hub's data directory.")
ConnectionOption = typer.Option(
    None, "--connection-string", help="Service connection string (or TWINFLEET_CONNECTION_STRING).",
    show_default=False,
)  # fmt: skip


SchemeOption = typer.Option(
    None, "--scheme", envvar="TWINFLEET_SCHEME", show_default=False,
    help="The fleet's metadata scheme, `module:Model` or a JSON Schema file: tags and query "
    "paths are checked against it before anything is sent (or TWINFLEET_SCHEME).",
)  # fmt: skip


DpsDirOption = typer.Option(
    None, "--dps-dir", help="The data directory of the local DPS the devices provision through."
)
DpsConnectionOption = typer.Option(
    None, "--dps-connection-string", show_default=False,
    help="The DPS's service connection string (or TWINFLEET_DPS_CONNECTION_STRING).",
)  # fmt: skip


def with_provisioning(
    fleet: TwinManager, dps_dir: Path | None, dps_connection_string: str | None
) -> TwinManager:
    """`fleet`, knowing the provisioning service the options (or the environment) name."""
    text = dps_connection_string or os.environ.get("TWINFLEET_DPS_CONNECTION_STRING")
    if dps_dir is not None:
        fleet.provisioning = ProvisioningService.from_dps_dir(dps_dir)
    elif text:
        fleet.provisioning = ProvisioningService(text)
    return fleet


def _connection_string(connection_string: str | None) -> str:
    text = connection_string or os.environ.get("TWINFLEET_CONNECTION_STRING")
    if not text:
        typer.echo("error: name a hub with --hub-dir, --connection-string or "
                   "TWINFLEET_CONNECTION_STRING", err=True)  # fmt: skip
        raise typer.Exit(2)
    return text


def connect_artifacts(hub_dir: Path | None, connection_string: str | None) -> ArtifactStore:
    """The artifact store of the hub the options name (a local hub: Azure has none)."""
    if hub_dir is not None:
        info = read_hub_dir(hub_dir)
        return ArtifactStore(info.service_connection_string, ca_file=info.ca_file)
    return ArtifactStore(_connection_string(connection_string))


def connect(
    hub_dir: Path | None, connection_string: str | None, scheme: str | None = None
) -> TwinManager:
    """A TwinManager for the hub the options name, checking against `scheme` when one is given;
    exits with a clear message when no hub is named.

    Raises:
        InvalidScheme: the scheme cannot be loaded.
    """
    fleet_scheme = load_scheme(scheme) if scheme else None
    if hub_dir is not None:
        return TwinManager.from_hub_dir(hub_dir, scheme=fleet_scheme)
    return TwinManager.from_connection_string(
        _connection_string(connection_string), scheme=fleet_scheme
    )
