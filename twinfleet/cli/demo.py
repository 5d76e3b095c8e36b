"""`twinfleet demo`: a local hub, a simulated fleet and two firmware campaigns."""

from __future__ import annotations

import logging

import typer
from rich.console import Console

from twinfleet.demo import run_demo

__all__ = ["demo"]


def demo(
    devices: int = typer.Option(50, "--devices", min=4, help="How many simulated devices."),
    keep: bool = typer.Option(False, "--keep", help="Leave the hub running afterwards."),
    host: str | None = typer.Option(
        None, "--host", help="Loopback address for the hub (default: the first free 127.84.N.1)."
    ),
    tier: str | None = typer.Option(
        None, "--tier", help="Run the hub on this IoT Hub tier's quotas (F1, S1, S2, S3)."
    ),
    units: int = typer.Option(1, "--units", min=1, help="The tier's number of units."),
) -> None:
    """Run a safe firmware rollout over a simulated fleet on an embedded hub."""
    logging.getLogger("azure").setLevel(logging.CRITICAL)
    logging.getLogger("paho").setLevel(logging.CRITICAL)
    logging.getLogger("device_agent").setLevel(logging.ERROR)  # the devices' own logs
    tier = tier.upper() if tier else None
    raise typer.Exit(
        run_demo(Console(), devices=devices, keep=keep, host=host, tier=tier, units=units)
    )
