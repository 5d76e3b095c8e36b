"""`twinfleet dps`: run a local Device Provisioning Service and manage its enrollments.

`serve` runs the service in the foreground. The other commands work on the service's data
directory (`--dps-dir`) directly, through its SQLite store, so they work whether or not the
service is running (SQLite's locking keeps both consistent).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from local_hub import ports
from local_hub.provisioning import (
    ALLOCATION_POLICIES,
    EnrollmentError,
    Enrollments,
    ProvisioningStore,
    derive_device_key,
)
from local_hub.provisioning import (
    serve as serve_dps,
)
from twinfleet.cli.exit_codes import ExitCode

__all__ = ["app"]

app = typer.Typer(
    help="A local Device Provisioning Service: devices provision themselves into local hubs.",
    no_args_is_help=True,
)
group_app = typer.Typer(help="Symmetric-key enrollment groups.", no_args_is_help=True)
enrollment_app = typer.Typer(help="Symmetric-key individual enrollments.", no_args_is_help=True)
app.add_typer(group_app, name="enrollment-group")
app.add_typer(enrollment_app, name="enrollment")

_DPS_DIR = typer.Option(..., "--dps-dir", help="The provisioning service's data directory.")
_JSON = typer.Option(False, "--json", help="Print JSON.")
_TWIN = typer.Option(
    None, "--initial-twin", help='The initial twin, as JSON: {"tags": {...}, "properties": '
    '{"desired": {...}}}.',
)  # fmt: skip
_ALLOCATION = typer.Option("hashed", "--allocation", help="hashed (spread evenly) or static.")
_HUBS = typer.Option(
    None, "--iot-hub", help="A hub it may assign to, by its address (repeat; default: all)."
)
_PRIMARY = typer.Option(None, "--primary-key", help="The primary key (default: a new one).")
_SECONDARY = typer.Option(None, "--secondary-key", help="The secondary key (default: new).")
_DISABLED = typer.Option(False, "--disabled", help="Create it disabled.")
_REPROVISION = typer.Option(
    "migrate", "--reprovision", help="When a re-registering device moves hub: migrate (its twin "
    "goes along), reset (the initial twin), or never (it keeps its hub).",
)  # fmt: skip
_POLICIES = {
    "migrate": {"updateHubAssignment": True, "migrateDeviceData": True},
    "reset": {"updateHubAssignment": True, "migrateDeviceData": False},
    "never": {"updateHubAssignment": False, "migrateDeviceData": False},
}


def _reprovision(choice: str) -> dict[str, bool]:
    if choice not in _POLICIES:
        raise _fail(
            f"--reprovision must be one of {', '.join(_POLICIES)}, not {choice!r}", ExitCode.USAGE
        )
    return _POLICIES[choice]


def _fail(message: str, code: ExitCode = ExitCode.ERROR) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _enrollments(dps_dir: Path) -> Enrollments:
    database = dps_dir / "dps.db"
    if not database.exists():
        raise _fail(f"{dps_dir} holds no provisioning service (no dps.db)", ExitCode.USAGE)
    return Enrollments(ProvisioningStore(database))


def _parse_twin(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _fail(f"--initial-twin is not JSON: {exc}", ExitCode.USAGE) from None


def _check_allocation(allocation: str) -> None:
    if allocation not in ALLOCATION_POLICIES:
        raise _fail(
            f"--allocation must be one of {', '.join(ALLOCATION_POLICIES)}, not {allocation!r}",
            ExitCode.USAGE,
        )


def _show(doc: dict[str, Any], as_json: bool, *, with_keys: bool = True) -> None:
    if not with_keys:
        doc = {k: v for k, v in doc.items() if k != "attestation"}
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    for name, value in doc.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        typer.echo(f"{name}: {shown}")


def _list(docs: list[dict[str, Any]], id_field: str, as_json: bool) -> None:
    """Print enrollments or groups without their keys: JSON, or a line each."""
    if as_json:
        typer.echo(json.dumps([{k: v for k, v in d.items() if k != "attestation"} for d in docs]))
        return
    for doc in docs:
        typer.echo(f"{doc[id_field]}  {doc['provisioningStatus']}  {doc['allocationPolicy']}")


def _create_and_show(
    create: Callable[[Enrollments], Callable[..., dict[str, Any]]], key: str, dps_dir: Path,
    *, initial_twin: str | None, allocation: str, reprovision: str, disabled: bool,
    as_json: bool, **fields: Any,
) -> None:  # fmt: skip
    """Check the options shared by groups and enrollments, create one with `create` (given the
    store's `Enrollments`) under `key` with those and `fields`, and print it with its keys."""
    _check_allocation(allocation)
    policy = _reprovision(reprovision)
    twin = _parse_twin(initial_twin)
    make = create(_enrollments(dps_dir))
    doc = _run(
        lambda: make(
            key,
            allocation=allocation,
            initial_twin=twin,
            enabled=not disabled,
            reprovision=policy,
            **fields,
        )
    )
    _show(doc, as_json)


def _run(action: Any) -> Any:
    try:
        return action()
    except EnrollmentError as exc:
        code = ExitCode.USAGE if exc.status == 400 else ExitCode.ERROR
        raise _fail(str(exc), code) from None


# -- serve ---------------------------------------------------------------------------------


async def _serve(data_dir: Path, hub_dirs: list[Path], host: str, service_port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve_dps(data_dir, hub_dirs, host=host, service_port=service_port, stop=stop)


@app.command()
def serve(
    data_dir: Path = typer.Option(..., "--data-dir", help="The service's directory."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address it listens on (its own: it takes port 8883)."
    ),
    service_port: int = typer.Option(
        0, "--service-port", help="The service API's HTTPS port (0: any free one)."
    ),
    hub_dirs: list[Path] = typer.Option(
        ..., "--hub-dir", help="A linked hub's data directory (repeat; the first one's CA signs)."
    ),
) -> None:
    """Serve device registrations (MQTT over TLS on port 8883), assigning devices to the hubs,
    and the service API (enrollments, groups, registrations; HTTPS on --service-port).

    Writes DATA_DIR/dps.json (provisioningHost, idScope, serviceConnectionString,
    caCertificatePath) once it listens.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("local_hub").setLevel(logging.INFO)
    try:
        asyncio.run(_serve(data_dir, hub_dirs, host, service_port))
    except OSError as exc:
        reason = ports.permission_hint(exc, host, 8883) or exc.strerror or exc
        raise _fail(f"cannot start the provisioning service: {reason}") from None
    except ValueError as exc:
        raise _fail(f"cannot start the provisioning service: {exc}", ExitCode.USAGE) from None


# -- enrollment groups ---------------------------------------------------------------------


@group_app.command("create")
def group_create(
    group_id: str = typer.Argument(..., metavar="GROUP"),
    dps_dir: Path = _DPS_DIR,
    initial_twin: str | None = _TWIN,
    allocation: str = _ALLOCATION,
    iot_hubs: list[str] | None = _HUBS,
    primary_key: str | None = _PRIMARY,
    secondary_key: str | None = _SECONDARY,
    disabled: bool = _DISABLED,
    reprovision: str = _REPROVISION,
    as_json: bool = _JSON,
) -> None:
    """Create an enrollment group; prints it with its keys (devices derive theirs from them)."""
    _create_and_show(
        lambda enrollments: enrollments.create_group, group_id, dps_dir,
        initial_twin=initial_twin, allocation=allocation, reprovision=reprovision,
        disabled=disabled, as_json=as_json,
        iot_hubs=iot_hubs, primary_key=primary_key, secondary_key=secondary_key,
    )  # fmt: skip


@group_app.command("list")
def group_list(dps_dir: Path = _DPS_DIR, as_json: bool = _JSON) -> None:
    """List enrollment groups (without their keys)."""
    _list(_enrollments(dps_dir).groups(), "enrollmentGroupId", as_json)


@group_app.command("show")
def group_show(
    group_id: str = typer.Argument(..., metavar="GROUP"),
    dps_dir: Path = _DPS_DIR,
    as_json: bool = _JSON,
) -> None:
    """Show an enrollment group, its keys included."""
    enrollments = _enrollments(dps_dir)
    _show(_run(lambda: enrollments.group(group_id)), as_json)


@group_app.command("delete")
def group_delete(
    group_id: str = typer.Argument(..., metavar="GROUP"), dps_dir: Path = _DPS_DIR
) -> None:
    """Delete an enrollment group (identities it created stay in their hubs)."""
    enrollments = _enrollments(dps_dir)
    _run(lambda: enrollments.delete_group(group_id))
    typer.echo(f"deleted enrollment group {group_id}")


# -- individual enrollments ----------------------------------------------------------------


@enrollment_app.command("create")
def enrollment_create(
    registration_id: str = typer.Argument(..., metavar="REGISTRATION_ID"),
    dps_dir: Path = _DPS_DIR,
    device_id: str | None = typer.Option(
        None, "--device-id", help="The identity's id (default: the registration id)."
    ),
    initial_twin: str | None = _TWIN,
    allocation: str = _ALLOCATION,
    iot_hubs: list[str] | None = _HUBS,
    primary_key: str | None = _PRIMARY,
    secondary_key: str | None = _SECONDARY,
    disabled: bool = _DISABLED,
    reprovision: str = _REPROVISION,
    as_json: bool = _JSON,
) -> None:
    """Create an individual enrollment; prints it with its keys."""
    _create_and_show(
        lambda enrollments: enrollments.create, registration_id, dps_dir,
        initial_twin=initial_twin, allocation=allocation, reprovision=reprovision,
        disabled=disabled, as_json=as_json, device_id=device_id,
        iot_hubs=iot_hubs, primary_key=primary_key, secondary_key=secondary_key,
    )  # fmt: skip


@enrollment_app.command("list")
def enrollment_list(dps_dir: Path = _DPS_DIR, as_json: bool = _JSON) -> None:
    """List individual enrollments (without their keys)."""
    _list(_enrollments(dps_dir).enrollments(), "registrationId", as_json)


@enrollment_app.command("show")
def enrollment_show(
    registration_id: str = typer.Argument(..., metavar="REGISTRATION_ID"),
    dps_dir: Path = _DPS_DIR,
    as_json: bool = _JSON,
) -> None:
    """Show an individual enrollment, its keys included."""
    enrollments = _enrollments(dps_dir)
    _show(_run(lambda: enrollments.enrollment(registration_id)), as_json)


@enrollment_app.command("delete")
def enrollment_delete(
    registration_id: str = typer.Argument(..., metavar="REGISTRATION_ID"),
    dps_dir: Path = _DPS_DIR,
) -> None:
    """Delete an individual enrollment (its identity stays in its hub)."""
    enrollments = _enrollments(dps_dir)
    _run(lambda: enrollments.delete(registration_id))
    typer.echo(f"deleted enrollment {registration_id}")


# -- registrations and keys ----------------------------------------------------------------


@app.command("registrations")
def registrations(dps_dir: Path = _DPS_DIR, as_json: bool = _JSON) -> None:
    """List registration states: which device went to which hub."""
    docs = _enrollments(dps_dir).registrations()
    if as_json:
        typer.echo(json.dumps(docs, indent=2))
        return
    for doc in docs:
        typer.echo(
            f"{doc['registrationId']}  {doc['status']}  {doc.get('assignedHub', '-')}  "
            f"{doc.get('deviceId', '-')}  {doc.get('lastUpdatedDateTimeUtc', '')}"
        )


@app.command("derive-key")
def derive_key(
    registration_id: str = typer.Argument(..., metavar="REGISTRATION_ID"),
    group_key: str = typer.Option(..., "--group-key", help="The enrollment group's key."),
    as_json: bool = typer.Option(False, "--json", help="Print the registration id and its key."),
) -> None:
    """Print a device's key in a symmetric-key enrollment group (as `az iot dps
    enrollment-group compute-device-key` does)."""
    try:
        key = derive_device_key(group_key, registration_id)
    except ValueError as exc:
        raise _fail(f"--group-key: {exc}", ExitCode.USAGE) from None
    typer.echo(json.dumps({"registrationId": registration_id, "symmetricKey": key})
               if as_json else key)  # fmt: skip
