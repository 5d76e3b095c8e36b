"""`twinfleet agent run`: a thin alias of `twinfleet-agent` (`device_agent.cli`), so the back-end
CLI and the device command run the same entry point with the same settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from device_agent import cli as device_cli

__all__ = ["app"]

app = typer.Typer(help="Run the device agent.", no_args_is_help=True)


def _secret_option(flag: str, envvar: str, help_text: str) -> Any:
    """An option for a secret, also read from `envvar`; help never shows its value."""
    return typer.Option(None, flag, envvar=envvar, help=help_text, show_default=False)


@app.command()
def run(
    config: Path | None = typer.Option(
        None, "--config", help="The agent's TOML settings file (see `twinfleet-agent --help`)."
    ),
    connection_string: str | None = _secret_option(
        "--connection-string",
        "TWINFLEET_DEVICE_CONNECTION_STRING",
        "The device's connection string (overrides the file's connection).",
    ),
    ca_cert: Path | None = typer.Option(
        None, "--ca-cert", help="CA file to trust for the hub (and the provisioning service)."
    ),
    dps_host: str | None = typer.Option(
        None, "--dps-host", help="Provision through this Device Provisioning Service host."
    ),
    id_scope: str | None = typer.Option(None, "--id-scope", help="The DPS ID scope."),
    registration_id: str | None = typer.Option(
        None, "--registration-id", help="The device's registration id at the DPS."
    ),
    symmetric_key: str | None = _secret_option(
        "--symmetric-key",
        "TWINFLEET_DEVICE_SYMMETRIC_KEY",
        "The device's key (in an enrollment group: derived from the group's key).",
    ),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="Where the agent keeps its state (overrides the file)."
    ),
    simulated: bool = typer.Option(
        False, "--simulated", help="Run on a simulated A/B device (the platform choice)."
    ),
    initial_version: str | None = typer.Option(
        None, help="Simulated: the factory firmware version (default 1.0.0)."
    ),
    log_level: str | None = typer.Option(None, "--log-level", help="debug, info, warning, error."),
    apps: list[str] = typer.Option(
        [], "--app", help="Handlers of yours to run too, as module:attribute (repeatable)."
    ),
) -> None:
    """Connect, reconcile toward the desired twin and report, until stopped (Ctrl-C).

    Give a settings file with --config (a real device's commands need one),
    or say everything with --connection-string, --state-dir and --simulated.

    A device that provisions itself gives --dps-host, --id-scope,
    --registration-id and --symmetric-key instead of --connection-string.
    """
    arguments: list[str] = []
    # Secrets through the environment, not argv: they stay out of `ps` and survive a re-exec.
    if connection_string is not None:
        os.environ["TWINFLEET_DEVICE_CONNECTION_STRING"] = connection_string
    if symmetric_key is not None:
        os.environ["TWINFLEET_DEVICE_SYMMETRIC_KEY"] = symmetric_key
    for flag, value in (
        ("--config", config), ("--ca-cert", ca_cert), ("--state-dir", state_dir),
        ("--initial-version", initial_version), ("--log-level", log_level),
        ("--dps-host", dps_host), ("--id-scope", id_scope), ("--registration-id", registration_id),
    ):  # fmt: skip
        if value is not None:
            arguments += [flag, str(value)]
    if simulated:
        arguments.append("--simulated")
    for app_ref in apps:
        arguments += ["--app", app_ref]
    raise typer.Exit(device_cli.main(arguments))
