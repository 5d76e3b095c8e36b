"""`twinfleet artifact ...`: firmware images and other files devices download from the hub.

`upload` streams a file to the hub and prints a signed download URL devices can use (on the hub's
service endpoint, valid `--ttl`) and the file's SHA-256: the two things a firmware campaign needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from twin_manager import Artifact
from twinfleet.cli.connecting import ConnectionOption, HubDirOption, connect_artifacts
from twinfleet.cli.durations import parse_duration

__all__ = ["app"]

app = typer.Typer(help="Files devices download (firmware images), served by the hub.",
                  no_args_is_help=True)  # fmt: skip

TtlOption = typer.Option(
    "7d",
    "--ttl",
    parser=parse_duration,
    help="How long the download URL works (90s, 15m, 12h, 7d).",
)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of text.")


def _show(artifact: Artifact, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(artifact.to_json()))
        return
    typer.echo(f"name:    {artifact.name}")
    typer.echo(f"size:    {artifact.size} bytes")
    typer.echo(f"sha256:  {artifact.sha256}")
    typer.echo(f"url:     {artifact.url}")
    typer.echo(f"expires: {artifact.expires_at}")


@app.command("upload")
def upload(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    name: str | None = typer.Option(None, "--name", help="Name on the hub (default: file name)."),
    ttl: int = TtlOption,
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Upload FILE; print its signed download URL and SHA-256."""
    _show(connect_artifacts(hub_dir, connection_string).upload(file, name=name, ttl=ttl), as_json)


@app.command("url")
def url(
    name: str,
    ttl: int = TtlOption,
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Print a fresh signed download URL for a stored artifact."""
    _show(connect_artifacts(hub_dir, connection_string).url(name, ttl=ttl), as_json)


@app.command("list")
def list_artifacts(
    as_json: bool = JsonOption,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Every artifact on the hub: name, size, SHA-256, when it was uploaded."""
    found = connect_artifacts(hub_dir, connection_string).list()
    if as_json:
        typer.echo(json.dumps([a.to_json() for a in found]))
        return
    table = Table("name", "size", "sha256", "modified")
    for artifact in found:
        table.add_row(artifact.name, str(artifact.size), artifact.sha256, artifact.modified or "")
    Console(width=200).print(table)


@app.command("delete")
def delete(
    name: str,
    hub_dir: Path | None = HubDirOption,
    connection_string: str | None = ConnectionOption,
) -> None:
    """Delete an artifact (URLs signed for it stop working)."""
    connect_artifacts(hub_dir, connection_string).delete(name)
    typer.echo(f"artifact {name} deleted")
