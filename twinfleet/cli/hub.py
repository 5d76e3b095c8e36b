"""`twinfleet hub serve`: run a local hub in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import typer

import local_hub
from local_hub import ports, quotas
from local_hub.store import SchemaTooNew
from twinfleet.cli.exit_codes import ExitCode

__all__ = ["app"]

app = typer.Typer(help="Run the embedded, wire-compatible IoT Hub.", no_args_is_help=True)


async def _serve(
    data_dir: Path, host: str, service_port: int, name: str | None, tier: str | None, units: int
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await local_hub.serve(
        data_dir, host=host, service_port=service_port, name=name, stop=stop, tier=tier,
        units=units,
    )  # fmt: skip


@app.command()
def serve(
    data_dir: Path = typer.Option(..., "--data-dir", help="The hub's directory (created if new)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address both endpoints listen on."),
    service_port: int = typer.Option(8443, "--service-port", help="HTTPS port (0: any free)."),
    name: str | None = typer.Option(None, "--name", help="The hub's name (default twinfleet)."),
    tier: str | None = typer.Option(
        None,
        "--tier",
        help="Enforce this IoT Hub tier's throttles: F1, S1, S2 or S3 (default: none).",
    ),
    units: int = typer.Option(1, "--units", min=1, help="The tier's number of units."),
) -> None:
    """Serve devices (MQTT over TLS on port 8883) and back ends (HTTPS) from DATA_DIR.

    With --tier the hub throttles as an IoT hub of that tier and size does (429 past a quota);
    GET /quotas shows the use of each quota. Without it the hub has no quotas.
    """
    if tier is not None:
        tier = tier.upper()
        try:
            limits = quotas.limits(tier, units)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(ExitCode.USAGE) from None
        typer.echo(
            f"tier {tier}, {units} unit{'s' if units != 1 else ''}: "
            f"{limits['queries'] * 60:g} queries/min, {limits['twinUpdates']:g} twin updates/sec, "
            f"{limits['identityRegistryOperations'] * 60:g} registry operations/min "
            "(GET /quotas shows every quota and its use)"
        )
    else:
        typer.echo("no tier: no quotas (use --tier F1|S1|S2|S3 to throttle as IoT Hub does)")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("local_hub").setLevel(logging.INFO)
    local_hub.install_redactor()
    try:
        asyncio.run(_serve(data_dir, host, service_port, name, tier, units))
    except OSError as exc:
        reason = ports.permission_hint(exc, host, service_port) or exc.strerror or exc
        typer.echo(f"error: cannot start the hub: {reason}", err=True)
        raise typer.Exit(1) from None
    except SchemaTooNew as exc:
        typer.echo(f"error: cannot start the hub: {exc}", err=True)
        raise typer.Exit(1) from None
