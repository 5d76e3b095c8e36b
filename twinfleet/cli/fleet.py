"""`twinfleet fleet simulate`: many simulated devices, each a real SDK client, in one process;
given a hub (identities made here) or a provisioning service (devices provision themselves)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer

from device_agent import Credentials, Provisioner, run_simulated_device
from local_hub.provisioning import (
    EnrollmentError,
    Enrollments,
    ProvisioningStore,
    derive_device_key,
)
from twin_manager import DeviceNotFound, HubUnavailable, TwinManager, read_hub_dir
from twinfleet import light_devices
from twinfleet.cli.exit_codes import ExitCode

__all__ = ["app", "provisioned_devices", "settings_rejecter", "simulate_fleet"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRY_SECONDS = 2.0


def _when_reachable(call: Callable[[], T]) -> T:
    """`call()`, again every few seconds while the hub cannot be reached: a fleet started with
    (or just after) its hub waits for it, as the devices' own connections do."""
    while True:
        try:
            return call()
        except HubUnavailable as exc:
            log.warning("%s; trying again in %g s", exc, _RETRY_SECONDS)
            time.sleep(_RETRY_SECONDS)


app = typer.Typer(help="Simulated fleets.", no_args_is_help=True)


def settings_rejecter(keys: frozenset[str]) -> Callable[[dict[str, Any]], None]:
    """A device's `configure`: refuses settings that name any of `keys`, applies the rest."""

    def configure(settings: dict[str, Any]) -> None:
        refused = sorted(keys & settings.keys())
        if refused:
            raise ValueError(f"unsupported setting {', '.join(map(repr, refused))}")

    return configure


async def simulate_fleet(
    devices: Sequence[tuple[str, str | Provisioner]], ca_file: str, state_root: Path,
    initial_version: str, *, fail_first_boot: int = 0,
    reject_settings: frozenset[str] = frozenset(),
) -> None:  # fmt: skip
    """Run one simulated device per (name, connection string or provisioner) until cancelled;
    the first `fail_first_boot` devices fail the first trial boot of a new image, and every
    device refuses `reject_settings`."""
    ca_text = Path(ca_file).read_text()
    configure = settings_rejecter(reject_settings) if reject_settings else None
    await asyncio.gather(*(
        run_simulated_device(
            connection, state_root / name, ca_cert=ca_text, image_ca_file=ca_file,
            initial_version=initial_version, fail_first_boots=1 if index < fail_first_boot else 0,
            configure=configure,
        )
        for index, (name, connection) in enumerate(devices)
    ))  # fmt: skip


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(ExitCode.USAGE)


def provisioned_devices(
    dps_dir: Path, group_id: str, registration_ids: Sequence[str], state_root: Path
) -> tuple[list[tuple[str, str | Provisioner]], str]:
    """A provisioner per registration id in `group_id` of the local DPS in `dps_dir` (each knows
    only the provisioning host, the ID scope, its registration id and its derived key), and the
    CA file to trust.

    Raises:
        typer.Exit: the DPS is not running there, or has no such group.
    """
    try:
        info = json.loads((dps_dir / "dps.json").read_text())
    except (OSError, ValueError):
        raise _fail(
            f"{dps_dir} holds no running provisioning service (no dps.json); start it with "
            "`twinfleet dps serve`"
        ) from None
    store = ProvisioningStore(dps_dir / "dps.db")
    try:
        group = Enrollments(store).group(group_id)
    except EnrollmentError as exc:
        raise _fail(f"{exc} Create it with `twinfleet dps enrollment-group create`.") from None
    finally:
        store.close()
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    ca_file = str(info["caCertificatePath"])
    ca_text = Path(ca_file).read_text()
    devices: list[tuple[str, str | Provisioner]] = []
    for registration_id in registration_ids:
        credentials = Credentials(
            str(info["provisioningHost"]), str(info["idScope"]), registration_id,
            derive_device_key(group_key, registration_id),
        )  # fmt: skip
        provisioner = Provisioner(credentials, state_root / registration_id / "agent",
                                  ca_pem=ca_text)  # fmt: skip
        devices.append((registration_id, provisioner))
    return devices, ca_file


@app.command()
def simulate(
    hub_dir: Path | None = typer.Option(
        None, "--hub-dir", help="A running local hub's data directory."
    ),
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
    dps_dir: Path | None = typer.Option(
        None, "--dps-dir", help="Instead of --hub-dir: a running local DPS's data directory; "
        "the devices provision themselves through it.",
    ),
    enrollment_group: str | None = typer.Option(
        None, "--enrollment-group", metavar="GROUP",
        help="With --dps-dir: the enrollment group whose key the devices' keys derive from.",
    ),
    registration_ids: str | None = typer.Option(
        None, "--registration-ids", metavar="IDS",
        help="With --dps-dir: comma-separated registration ids (default: <prefix>-NNNN).",
    ),
    lightweight: bool = typer.Option(
        False, "--lightweight",
        help="With --hub-dir: lightweight devices (raw MQTT, twin traffic only, no state on "
        "disk), thousands in one process, for scale tests; --state-root, --fail-first-boot and "
        "--reject-settings do not apply.",
    ),
    sources: str = typer.Option(
        "", "--sources", metavar="ADDRESSES",
        help="With --lightweight: comma-separated local addresses to dial from in turn (more "
        "than about 28,000 connections to one hub need several).",
    ),
) -> None:  # fmt: skip
    """Run a simulated agent for each of DEVICES devices named <prefix>-NNNN (registered if new),
    or for every device a query condition selects (`--query`); with --dps-dir, each device
    knows only the provisioning host, the ID scope, its registration id and its derived key, and
    provisions itself."""
    rejected = frozenset(k.strip() for k in reject_settings.split(",") if k.strip())
    simulated: list[tuple[str, str | Provisioner]]
    if lightweight:
        if hub_dir is None or dps_dir is not None:
            raise _fail("--lightweight needs --hub-dir (lightweight devices do not provision)")
        simulated, ca_file = _hub_devices(hub_dir, devices, prefix, query)
        strings = [connection for _, connection in simulated if isinstance(connection, str)]
        _simulate_lightweight(strings, ca_file, initial_version, sources)
        return
    if state_root is None:
        raise _fail("--state-root DIR is required: the simulated agents keep their state there "
                    "(or use --lightweight, which keeps none)")  # fmt: skip
    if dps_dir is not None:
        if hub_dir is not None or query is not None:
            raise _fail("give --dps-dir or --hub-dir, not both (--query needs --hub-dir)")
        if enrollment_group is None:
            raise _fail("--dps-dir needs --enrollment-group: the group the devices enrol in")
        ids = [i.strip() for i in (registration_ids or "").split(",") if i.strip()] or [
            f"{prefix}-{i:04d}" for i in range(devices)
        ]
        simulated, ca_file = provisioned_devices(dps_dir, enrollment_group, ids, state_root)
    elif hub_dir is None:
        raise _fail("give --hub-dir (a local hub) or --dps-dir (a local DPS)")
    else:
        simulated, ca_file = _hub_devices(hub_dir, devices, prefix, query)
    typer.echo(f"running {len(simulated)} simulated devices (Ctrl-C to stop)", err=True)
    try:
        asyncio.run(
            simulate_fleet(
                simulated, ca_file, state_root, initial_version,
                fail_first_boot=fail_first_boot, reject_settings=rejected,
            )
        )  # fmt: skip
    except KeyboardInterrupt:
        pass


def _hub_devices(
    hub_dir: Path, devices: int, prefix: str, query: str | None
) -> tuple[list[tuple[str, str | Provisioner]], str]:
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
                _when_reachable(functools.partial(fleet.devices.get, device_id))
            except DeviceNotFound:
                _when_reachable(functools.partial(fleet.devices.create, device_id))
    connections: list[tuple[str, str | Provisioner]] = [
        (device_id, _when_reachable(functools.partial(fleet.devices.connection_string, device_id)))
        for device_id in ids
    ]
    return connections, read_hub_dir(hub_dir).ca_file


def _simulate_lightweight(
    connection_strings: list[str], ca_file: str, initial_version: str, sources: str
) -> None:
    addresses = [a.strip() for a in sources.split(",") if a.strip()]
    light = light_devices.LightFleet(connection_strings, ca_file, initial_version=initial_version,
                                     sources=addresses)  # fmt: skip

    def ready() -> None:
        typer.echo(f"{len(connection_strings)} lightweight devices connected", err=True)

    typer.echo(f"running {len(connection_strings)} lightweight simulated devices (Ctrl-C to "
               "stop)", err=True)  # fmt: skip
    try:
        asyncio.run(light.run(on_ready=ready))
    except KeyboardInterrupt:
        pass
