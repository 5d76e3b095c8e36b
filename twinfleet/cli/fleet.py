"""`twinfleet fleet simulate`: many simulated devices, each a real SDK client, in one process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from device_agent import run_simulated_device
from twin_manager import DeviceNotFound, TwinManager

__all__ = ["app", "settings_rejecter", "simulate_fleet"]

app = typer.Typer(help="Simulated fleets.", no_args_is_help=True)


def settings_rejecter(keys: frozenset[str]) -> Callable[[dict[str, Any]], None]:
    """A device's `configure`: refuses settings that name any of `keys`, applies the rest."""

    def configure(settings: dict[str, Any]) -> None:
        refused = sorted(keys & settings.keys())
        if refused:
            raise ValueError(f"unsupported setting {', '.join(map(repr, refused))}")

    return configure


async def simulate_fleet(
    fleet: TwinManager, ca_file: str, ids: list[str], state_root: Path, initial_version: str,
    *, fail_first_boot: int = 0, reject_settings: frozenset[str] = frozenset(),
) -> None:  # fmt: skip
    """Run one simulated device per id until cancelled; the first `fail_first_boot` devices fail
    the first trial boot of a new image, and every device refuses `reject_settings`."""
    ca_text = Path(ca_file).read_text()
    configure = settings_rejecter(reject_settings) if reject_settings else None
    devices = []
    for index, device_id in enumerate(ids):
        connection_string = await asyncio.to_thread(fleet.device_connection_string, device_id)
        devices.append(
            run_simulated_device(
                connection_string, state_root / device_id, ca_cert=ca_text,
                image_ca_file=ca_file, initial_version=initial_version,
                fail_first_boots=1 if index < fail_first_boot else 0, configure=configure,
            )
        )  # fmt: skip
    await asyncio.gather(*devices)


@app.command()
def simulate(
    hub_dir: Path = typer.Option(..., "--hub-dir", help="A running local hub's data directory."),
    devices: int = typer.Option(10, "--devices", min=1, help="How many devices."),
    state_root: Path = typer.Option(..., "--state-root", help="Where device state lives."),
    prefix: str = typer.Option("sim", help="Device ids are <prefix>-0000, <prefix>-0001, ..."),
    initial_version: str = typer.Option("1.0.0", help="The devices' factory firmware version."),
    fail_first_boot: int = typer.Option(
        0,
        "--fail-first-boot",
        min=0,
        metavar="N",
        help="The first N devices fail the first boot of a new image (they roll back; a retry "
        "succeeds).",
    ),
    reject_settings: str = typer.Option(
        "",
        "--reject-settings",
        metavar="KEYS",
        help="Comma-separated configuration keys every device refuses (reported as an error).",
    ),
) -> None:
    """Register DEVICES devices on the hub (if new) and run a simulated agent for each."""
    info_path = hub_dir / "hub.json"
    if not info_path.exists():
        typer.echo(f"error: no running hub in {hub_dir} (no hub.json); start `twinfleet hub serve`",
                   err=True)  # fmt: skip
        raise typer.Exit(1)
    info = json.loads(info_path.read_text())
    fleet = TwinManager(
        info["serviceConnectionString"], ca_file=info["caCertificatePath"],
        device_host_name=info["deviceHostName"], gateway_host_name=info["gatewayHostName"],
    )  # fmt: skip
    ids = [f"{prefix}-{i:04d}" for i in range(devices)]
    rejected = frozenset(k.strip() for k in reject_settings.split(",") if k.strip())
    for device_id in ids:
        try:
            fleet.get_device(device_id)
        except DeviceNotFound:
            fleet.create_device(device_id)
    typer.echo(f"running {devices} simulated devices (Ctrl-C to stop)", err=True)
    try:
        asyncio.run(
            simulate_fleet(
                fleet, info["caCertificatePath"], ids, state_root, initial_version,
                fail_first_boot=fail_first_boot, reject_settings=rejected,
            )
        )  # fmt: skip
    except KeyboardInterrupt:
        pass
