"""`twinfleet hub serve`: run a local hub in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import typer

import local_hub
from local_hub.store import SchemaTooNew

__all__ = ["app"]

app = typer.Typer(help="Run the embedded, wire-compatible IoT Hub.", no_args_is_help=True)


async def _serve(data_dir: Path, host: str, service_port: int, name: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await local_hub.serve(data_dir, host=host, service_port=service_port, name=name, stop=stop)


@app.command()
def serve(
    data_dir: Path = typer.Option(..., "--data-dir", help="The hub's directory (created if new)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address both endpoints listen on."),
    service_port: int = typer.Option(8443, "--service-port", help="HTTPS port (0: any free)."),
    name: str | None = typer.Option(None, "--name", help="The hub's name (default twinfleet)."),
) -> None:
    """Serve devices (MQTT over TLS on port 8883) and back ends (HTTPS) from DATA_DIR."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("local_hub").setLevel(logging.INFO)
    local_hub.install_redactor()
    try:
        asyncio.run(_serve(data_dir, host, service_port, name))
    except OSError as exc:
        typer.echo(f"error: cannot start the hub: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    except SchemaTooNew as exc:
        typer.echo(f"error: cannot start the hub: {exc}", err=True)
        raise typer.Exit(1) from None
