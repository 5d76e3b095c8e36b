"""`twinfleet fleet simulate`: many simulated devices, each a real SDK client, in one process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from device_agent import run_simulated_device
from twin_manager import DeviceNotFound, TwinManager, read_hub_dir

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
        connection_string = await asyncio.to_thread(fleet.devices.connection_string, device_id)
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
    query: str | None = typer.Option(
        None,
        "--query",
        metavar="CONDITION",
        help="Simulate the existing devices this condition selects, whatever their ids.",
    ),
) -> None:
    """Run a simulated agent for each of DEVICES devices named <prefix>-NNNN (registered if new),
    or for every device a query condition selects (`--query`)."""
    fleet = TwinManager.from_hub_dir(hub_dir)
    if query is not None:
        ids = [row["deviceId"] for row in fleet.queries.run(
            f"SELECT deviceId FROM devices WHERE {query}", page_size=1000)]  # fmt: skip
        if not ids:
            typer.echo(f"error: no device matches {query}", err=True)
            raise typer.Exit(1)
    else:
        ids = [f"{prefix}-{i:04d}" for i in range(devices)]
        for device_id in ids:
            try:
                fleet.devices.get(device_id)
            except DeviceNotFound:
                fleet.devices.create(device_id)
    ca_file = read_hub_dir(hub_dir).ca_file
    rejected = frozenset(k.strip() for k in reject_settings.split(",") if k.strip())
    typer.echo(f"running {len(ids)} simulated devices (Ctrl-C to stop)", err=True)
    try:
        asyncio.run(
            simulate_fleet(
                fleet, ca_file, ids, state_root, initial_version,
                fail_first_boot=fail_first_boot, reject_settings=rejected,
            )
        )  # fmt: skip
    except KeyboardInterrupt:
        pass
