"""`twinfleet fleet simulate`: many simulated devices, each a real SDK client, in one process."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from device_agent import run_simulated_device
from twin_manager import DeviceNotFound, TwinManager, read_hub_dir
from twinfleet import light_devices

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
    state_root: Path | None = typer.Option(
        None, "--state-root", help="Where device state lives (required but with --lightweight)."
    ),
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
    lightweight: bool = typer.Option(
        False,
        "--lightweight",
        help="Lightweight devices (raw MQTT, twin traffic only, no state on disk): thousands "
        "in one process, for scale tests. --state-root, --fail-first-boot and --reject-settings "
        "do not apply.",
    ),
    sources: str = typer.Option(
        "",
        "--sources",
        metavar="ADDRESSES",
        help="With --lightweight: comma-separated local addresses to dial from in turn (more "
        "than about 28,000 connections to one hub need several).",
    ),
) -> None:
    """Run a simulated agent for each of DEVICES devices named <prefix>-NNNN (registered if new),
    or for every device a query condition selects (`--query`)."""
    fleet = TwinManager.from_hub_dir(hub_dir)
    if query is not None:
        ids = [row["deviceId"] for row in fleet.query(
            f"SELECT deviceId FROM devices WHERE {query}", page_size=1000)]  # fmt: skip
        if not ids:
            typer.echo(f"error: no device matches {query}", err=True)
            raise typer.Exit(1)
    else:
        ids = [f"{prefix}-{i:04d}" for i in range(devices)]
        for device_id in ids:
            try:
                fleet.get_device(device_id)
            except DeviceNotFound:
                fleet.create_device(device_id)
    ca_file = read_hub_dir(hub_dir).ca_file
    if lightweight:
        _simulate_lightweight(fleet, ids, ca_file, initial_version, sources)
        return
    if state_root is None:
        typer.echo("error: --state-root DIR is required: the simulated agents keep their state "
                   "there (or use --lightweight, which keeps none).", err=True)  # fmt: skip
        raise typer.Exit(2)
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


def _simulate_lightweight(
    fleet: TwinManager, ids: list[str], ca_file: str, initial_version: str, sources: str
) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        strings = list(pool.map(fleet.device_connection_string, ids))
    addresses = [a.strip() for a in sources.split(",") if a.strip()]
    light = light_devices.LightFleet(strings, ca_file, initial_version=initial_version,
                                     sources=addresses)  # fmt: skip

    def ready() -> None:
        typer.echo(f"{len(ids)} lightweight devices connected", err=True)

    typer.echo(f"running {len(ids)} lightweight simulated devices (Ctrl-C to stop)", err=True)
    try:
        asyncio.run(light.run(on_ready=ready))
    except KeyboardInterrupt:
        pass
