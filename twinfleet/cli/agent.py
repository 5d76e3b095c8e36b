"""`twinfleet agent run`: the device agent in the foreground."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import typer

from device_agent import DeviceAgent, SimulatedPlatform, handlers

__all__ = ["app"]

app = typer.Typer(help="Run the device agent.", no_args_is_help=True)
log = logging.getLogger(__name__)


@app.command()
def run(
    connection_string: str = typer.Option(
        ...,
        "--connection-string",
        envvar="TWINFLEET_DEVICE_CONNECTION_STRING",
        help="The device's connection string.",
        show_default=False,
    ),
    ca_cert: Path | None = typer.Option(None, "--ca-cert", help="CA file to trust for the hub."),
    state_dir: Path = typer.Option(..., "--state-dir", help="Where the agent keeps its state."),
    simulated: bool = typer.Option(False, "--simulated", help="Run on a simulated A/B device."),
    initial_version: str = typer.Option("1.0.0", help="Simulated: the factory firmware version."),
    app_refs: list[str] = typer.Option(
        [],
        "--app",
        help="Handlers of yours to run too, as module:attribute (repeatable).",
    ),
) -> None:
    """Connect, reconcile toward the desired twin and report, until stopped (Ctrl-C).

    Besides the built-in handlers, the agent runs those installed packages declare in the
    `twinfleet.handlers` entry point group, and those `--app` names: a handler, a list of
    handlers, or a class or factory making them (see device_agent.handlers.api).
    """
    try:
        extra = [h for ref in app_refs for h in handlers.load_app(ref)]
    except handlers.HandlerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not simulated:
        typer.echo("error: only --simulated is available from the command line; embed "
                   "DeviceAgent with a CommandPlatform for real hardware", err=True)  # fmt: skip
        raise typer.Exit(2)
    platform = SimulatedPlatform(state_dir / "platform", initial_version=initial_version)
    platform.boot()
    ca_text = ca_cert.read_text() if ca_cert else None
    agent = DeviceAgent(
        connection_string, platform, state_dir / "agent", ca_cert=ca_text,
        image_ca_file=str(ca_cert) if ca_cert else None, handlers=extra,
    )  # fmt: skip
    try:
        outcome = asyncio.run(agent.run())
    except KeyboardInterrupt:
        return
    if outcome == "reboot":
        typer.echo("simulated reboot: restarting the agent", err=True)
        os.execv(sys.executable, [sys.executable, "-m", "twinfleet", *sys.argv[1:]])
