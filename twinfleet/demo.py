"""The demo: a whole fleet on one machine, updated by safe campaigns.

A local hub starts in a temporary directory, with a local Device Provisioning Service linked to
it; a mixed fleet enrols (two regions, two hardware models, a canary ring: an enrollment group
per combination, whose initial twin carries those tags). Each device knows only the
provisioning host, the ID scope, its registration id and its derived key: the online ones
provision themselves at first boot; a few were provisioned at the factory and stay offline at
first; a few have a new image that fails its first boot. Every device runs the real agent over
the real device SDKs (provisioning, then the hub) on a simulated A/B platform. A
firmware campaign rolls 2.0.0 out to the canaries first, then the rest at a ramping rate, retrying
the devices that roll back. A second campaign with a deliberately broken image trips its abort
threshold and stops before it hurts the fleet. The operator watches live progress per state, then
a summary built from GROUP BY queries.
"""

from __future__ import annotations

import asyncio
import hashlib
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from device_agent import Credentials, Provisioner, SimulatedFleet
from local_hub import LocalHub, ports
from local_hub.provisioning import LocalDps, derive_device_key
from local_hub.server import HTTPS_PORT
from patterns.campaigns import (
    AbortCriteria,
    Campaign,
    CampaignSpec,
    CampaignStatus,
    FirmwareUpdate,
    Group,
    Retries,
    Rollout,
)
from patterns.campaigns.pacing import Pacing, run_paced
from queries import nodes
from twin_manager import TwinManager

__all__ = ["run_demo"]

_STATES = ("queued", "admitted", "succeeded", "failed")


def _free_loopback(second: int = 84) -> str:
    for third in range(1, 250):
        address = f"127.{second}.{third}.1"
        with socket.socket() as probe:
            try:
                probe.bind((address, 8883))
            except OSError:
                continue
        return address
    raise RuntimeError("no free loopback address for the demo's hub or provisioning service")


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.25)


def _watch(
    console: Console, campaign: Campaign, total: int, title: str, pacing: Pacing | None = None
) -> CampaignStatus:
    with Progress(
        TextColumn("[bold]{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
        console=console, transient=False,
    ) as progress:  # fmt: skip
        console.print(f"[bold cyan]{title}[/]")
        bars = {state: progress.add_task(state, total=total) for state in _STATES}

        def show(status: CampaignStatus) -> None:
            for state in _STATES:
                count = status.counts.get(state, 0)
                if state == "failed":
                    count = status.failed
                progress.update(bars[state], completed=count)

        if pacing is not None:  # within the hub's query quota
            return run_paced(campaign, pacing, on_tick=show)
        return campaign.run(poll=0.5, on_tick=show)


def _enrol(dps: LocalDps, count: int, workdir: Path) -> list[dict[str, Any]]:
    """An enrollment group per region, model and ring (its initial twin carries those tags),
    and each device's credentials: what it knows, never a hub."""
    enrollments, store = dps.enrollments()
    devices = []
    keys: dict[str, str] = {}
    ca_pem = Path(dps.ca_certificate_path).read_text()
    try:
        for i in range(count):
            device_id = f"device-{i:03d}"
            tags = {
                "region": "eu-west" if i % 2 == 0 else "us-east",
                "model": "gw-100" if i % 3 else "gw-200",
                "ring": "canary" if i < max(2, count // 10) else "main",
            }
            group_id = f"{tags['region']}-{tags['model']}-{tags['ring']}"
            if group_id not in keys:
                group = enrollments.create_group(group_id, initial_twin={"tags": tags})
                keys[group_id] = group["attestation"]["symmetricKey"]["primaryKey"]
            credentials = Credentials(
                dps.host, dps.id_scope, device_id, derive_device_key(keys[group_id], device_id)
            )
            devices.append(
                {"id": device_id, "group": group_id, "offline": i >= count - max(1, count // 10),
                 "flaky": tags["model"] == "gw-200" and i % 4 == 1,
                 "provisioner": Provisioner(
                     credentials, workdir / "devices" / device_id / "agent", ca_pem=ca_pem)}
            )  # fmt: skip
    finally:
        store.close()
    return devices


async def _provision_at_factory(devices: list[dict[str, Any]]) -> None:
    await asyncio.gather(*(device["provisioner"].assignment() for device in devices))


def _summary(console: Console, fleet: TwinManager, campaigns: list[CampaignStatus]) -> None:
    table = Table(title="Fleet by firmware version and update status (GROUP BY)")
    table.add_column("currentFwVersion")
    table.add_column("fwUpdateStatus")
    table.add_column("devices", justify="right")
    versions = fleet.queries.group_by(
        "properties.reported.firmware.currentFwVersion", "IS_DEFINED(properties.reported.firmware)"
    )
    for version in sorted(versions, key=str):
        statuses = fleet.queries.group_by(
            "properties.reported.firmware.fwUpdateStatus",
            f"properties.reported.firmware.currentFwVersion = {nodes.literal_sql(version)}",
        )
        for status in sorted(statuses, key=str):
            table.add_row(str(version), str(status), str(statuses[status]))
    console.print(table)
    outcome = Table(title="Campaigns")
    outcome.add_column("campaign", no_wrap=True)
    outcome.add_column("status", no_wrap=True, min_width=9)
    for column in ("ok", "failed", "cancelled"):
        outcome.add_column(column, justify="right", no_wrap=True)
    outcome.add_column("top failure reason", overflow="fold")
    for status in campaigns:
        reason = max(status.reasons, key=lambda r: status.reasons[r]) if status.reasons else ""
        outcome.add_row(
            status.campaign_id, status.status, str(status.counts.get("succeeded", 0)),
            str(status.failed), str(status.counts.get("cancelled", 0)), reason,
        )  # fmt: skip
    console.print(outcome)


def _hint(console: Console, hub: LocalHub, dps: LocalDps) -> None:
    """Commands to try while the hub runs, each on one unwrapped line so it pastes as it is."""
    hub_dir = shlex.quote(str(hub.data_dir.resolve()))
    dps_dir = shlex.quote(str(dps.data_dir.resolve()))
    query = shlex.quote("SELECT * FROM devices WHERE tags.ring = 'canary'")
    console.print("\nThe hub keeps running. Try, in another terminal:", highlight=False)
    for command in (
        f"twinfleet query --hub-dir {hub_dir} {query}",
        f"twinfleet campaign list --hub-dir {hub_dir}",
        f"twinfleet dps registrations --dps-dir {dps_dir}",
        f"twinfleet dashboard --hub-dir {hub_dir}",
    ):
        console.print(f"  {command}", soft_wrap=True, highlight=False, markup=False)
    console.print(
        "The dashboard then serves http://127.0.0.1:8080/. Press Ctrl-C to stop.", highlight=False
    )


def run_demo(
    console: Console,
    *,
    devices: int = 50,
    keep: bool = False,
    host: str | None = None,
    tier: str | None = None,
    units: int = 1,
) -> int:
    """Run the demo; returns the exit code (0 when the fleet converged as intended).

    With `tier`, the hub enforces that IoT Hub tier's quotas and the campaigns are paced to
    stay within them (the demo is the hub's only user, so they take the whole query quota).

    Args:
        console: where progress and tables go.
        devices: how many simulated devices.
        keep: leave the hub (and its temporary directory) running until Ctrl-C.
        host: the loopback address for the hub; by default the first free 127.84.N.1.
        tier: run the hub on this IoT Hub tier's quotas (F1, S1, S2, S3); None: no quotas.
        units: the tier's number of units.
    """
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="twinfleet-demo-"))
    host = host or _free_loopback()
    # IoT Hub's own port when this process may take it (every language's SDK then connects).
    service_port = HTTPS_PORT if ports.can_listen(host, HTTPS_PORT) else 0
    hub = LocalHub(
        workdir / "hub", host=host, name="demo-hub", service_port=service_port, tier=tier,
        units=units,
    ).start()  # fmt: skip
    dps: LocalDps | None = None
    simulated = SimulatedFleet().start()
    try:
        dps = LocalDps(workdir / "dps", [hub.data_dir], host=_free_loopback(85)).start()
        fleet = TwinManager.from_local_hub(hub)
        console.print(f"Local hub [bold]{hub.device_host_name}[/] on {host}, service port "
                      f"{hub.service_port} (data in {workdir})")  # fmt: skip
        registered = _enrol(dps, devices, workdir)
        groups = len({d["group"] for d in registered})
        console.print(f"Local DPS on {dps.host}, ID scope {dps.id_scope}: {groups} enrollment "
                      "groups")  # fmt: skip
        ca_text, ca_file = hub.ca_certificate, hub.ca_certificate_path
        offline = [d for d in registered if d["offline"]]
        asyncio.run(_provision_at_factory(offline))

        def power_on(device: dict[str, Any]) -> None:
            simulated.add(
                device["provisioner"], workdir / "devices" / device["id"],
                ca_cert=ca_text, image_ca_file=ca_file, fail_first_boots=int(device["flaky"]),
            )  # fmt: skip

        online = [d for d in registered if not d["offline"]]
        for device in online:
            power_on(device)
        console.print(f"{devices} devices enrolled: {len(online)} provision themselves now, "
                      f"{len(offline)} offline for now")  # fmt: skip
        _wait(lambda: fleet.queries.count("properties.reported.firmware.fwUpdateStatus = 'current'")
              >= len(online), 120, "the online devices reporting")  # fmt: skip

        image = b"twinfleet demo firmware 2.0.0\n" * 20000
        good = hub.upload_artifact("firmware-2.0.0.bin", image)
        spec = CampaignSpec(
            id="firmware_2_0_0",
            pattern=FirmwareUpdate(
                version="2.0.0",
                package_uri=good["url"],
                check_value=good["sha256"],
                package_size=good["size"],
            ),
            target="tags.model IN ['gw-100', 'gw-200']",
            groups=(Group(name="canary", condition="tags.ring = 'canary'", success_threshold=0.5),),
            rollout=Rollout(per_minute=60, ramp_factor=2, ramp_after=8, max_per_minute=600),
            retries=Retries(max_attempts=3, backoff_seconds=1),
            abort=AbortCriteria(failure_percent=50, min_finished=10),
            timeout_seconds=60,
        )
        campaign = Campaign.create(fleet, spec)
        for device in registered:
            if device["offline"]:
                power_on(device)  # the stragglers come online while the canaries update
        paced = None if tier is None else Pacing.for_tier(tier, units, share=1.0)
        if paced is not None:
            console.print(f"Tier {tier}: the controller ticks at once while the hub's burst "
                          f"lasts, then every {paced.poll:.0f} s, within its quotas")  # fmt: skip
        first = _watch(console, campaign, devices, "Campaign 1: firmware 2.0.0, canaries first",
                       paced)  # fmt: skip

        broken = hub.upload_artifact("firmware-2.1.0.bin", b"a corrupted image")
        bad_spec = CampaignSpec(
            id="firmware_2_1_0",
            pattern=FirmwareUpdate(
                version="2.1.0",
                package_uri=broken["url"],
                check_value=hashlib.sha256(b"the image we meant").hexdigest(),
            ),
            target="tags.model IN ['gw-100', 'gw-200']",
            rollout=Rollout(per_minute=120),
            abort=AbortCriteria(failure_percent=30, min_finished=5),
            timeout_seconds=60,
        )
        paced = None if tier is None else Pacing.for_tier(tier, units, share=1.0)
        second = _watch(console, Campaign.create(fleet, bad_spec), devices,
                        "Campaign 2: firmware 2.1.0 with a broken image", paced)  # fmt: skip
        _summary(console, fleet, [first, second])
        converged = (
            first.status == "completed"
            and second.status == "aborted"
            and fleet.queries.count("properties.reported.firmware.currentFwVersion = '2.0.0'")
            == devices
        )
        elapsed = time.monotonic() - started
        verdict = "[green]converged[/]" if converged else "[red]did not converge[/]"
        retried = fleet.queries.count("tags.twinfleet.firmware_2_0_0.attempt > 1")
        console.print(
            f"{retried} devices failed their first boot, rolled back, and succeeded on retry."
        )
        last = second.log[-1] if second.log else ""
        console.print(f"Fleet {verdict}: {devices} devices in {elapsed:.1f} s.")
        console.print(f"Campaign 2 stopped itself: {last}")
        if keep:
            _hint(console, hub, dps)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0 if converged else 1
    finally:
        simulated.stop()
        if dps is not None:
            dps.close()
        hub.close()
        shutil.rmtree(workdir, ignore_errors=True)
