"""The soak itself: set up the hub, the proxies and the fleet, roll firmware out campaign after
campaign while the injector breaks things and the checker watches, then heal, settle and judge.

Layout on loopback: the hub listens on its own address (MQTT 8883, HTTPS on a fixed port kept
across restarts); the proxies listen on a second address with the same ports. The hub's server
certificate names both addresses, so TLS is verified end to end through the proxy. A second data
directory (`via-proxy/hub.json`) describes the hub with the proxy as the devices' gateway, and
`HTTPS_PROXY` sends HTTPS through the other proxy: the agents (`twinfleet fleet simulate`, image
downloads included) and the controller (`twinfleet campaign run`) are given both, so every byte
they exchange with the hub crosses a proxy the injector controls. The checker reads the hub
directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.soak import faults, invariants, probing, processes, proxying
from local_hub import certs
from patterns.campaigns import Campaign, CampaignSpec, FirmwareUpdate, Retries, Rollout
from twin_manager import Conflict, HubError, RetryPolicy, TwinManager

__all__ = ["Options", "Soak"]

log = logging.getLogger(__name__)

_MQTT_PORT = 8883
_FLEET = "tags.soak = 'fleet'"
_CONTROLLER_LIFE = 20.0  # seconds a controller runs before it may be killed
_SETTLED_EXITS = (0, 3, 4, 5)  # `campaign run`: succeeded, aborted, completed with failures, ...


@dataclass(frozen=True)
class Options:
    minutes: float = 10.0
    devices: int = 100
    per_process: int = 10
    seed: int = 1
    fault_interval: float = 4.0
    grace: float = 60.0
    campaign_timeout: float = 120.0
    workdir: Path = Path("build/soak")


def _free_loopback(salt: int) -> str:
    for n in range(2, 250):
        address = f"127.{200 + salt % 50}.{os.getpid() % 250}.{n}"
        with socket.socket() as probe:
            try:
                probe.bind((address, _MQTT_PORT))
            except OSError:
                continue
        return address
    raise RuntimeError("no loopback address with port 8883 free")


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class Soak:
    """One soak run (see the module docstring)."""

    def __init__(self, options: Options) -> None:
        self.options = options
        work = options.workdir.resolve()
        self.hub_dir, self.proxy_dir = work / "hub", work / "via-proxy"
        self.state_root, self.logs = work / "devices", work / "logs"
        self.images = work / "images"
        for directory in (self.state_root, self.logs, self.images):
            directory.mkdir(parents=True, exist_ok=True)
        self.hub_host = _free_loopback(0)
        self.proxy_host = _free_loopback(1)
        self.service_port = _free_port(self.hub_host)
        self.hub = processes.hub(self.hub_dir, self.hub_host, self.service_port, self.logs)
        self.mqtt = proxying.Proxy("mqtt", self.proxy_host, _MQTT_PORT, self.hub_host, _MQTT_PORT)
        self.rest = proxying.Proxy(
            "rest",
            self.proxy_host,
            self.service_port,
            self.hub_host,
            self.service_port,
            tunnel=True,
        )
        self.https_proxy = f"http://{self.proxy_host}:{self.service_port}"
        groups = -(-options.devices // options.per_process)
        self.groups: list[processes.Child] = []
        self.group_devices: list[list[str]] = []
        for index in range(groups):
            count = min(options.per_process, options.devices - index * options.per_process)
            self.groups.append(
                processes.agent_group(
                    index, self.proxy_dir, count, self.state_root, self.logs, self.https_proxy
                )
            )
            prefix = processes.group_prefix(index)
            self.group_devices.append([f"{prefix}-{i:04d}" for i in range(count)])
        self.devices = [d for group in self.group_devices for d in group]
        self.probes = [f"soak-probe-{i}" for i in range(3)]
        self.controller: processes.Child | None = None
        self.held: set[str] = set()
        self.ledger = invariants.Ledger()
        self.campaigns: list[str] = []
        self.injector = faults.Injector(self, options.seed, options.fault_interval)
        self._rng = random.Random(options.seed + 1)
        self.fleet: TwinManager | None = None
        self.via: TwinManager | None = None

    # -- the hub ---------------------------------------------------------------------------

    async def start_hub(self) -> dict[str, Any]:
        info_path = self.hub_dir / "hub.json"
        for _ in range(5):
            info_path.unlink(missing_ok=True)
            self.hub.start()
            deadline = time.monotonic() + 90
            while self.hub.alive and time.monotonic() < deadline:
                if info_path.exists():
                    info: dict[str, Any] = json.loads(info_path.read_text())
                    return info
                await asyncio.sleep(0.1)
            self.observe(f"the hub did not start (exit {self.hub.returncode}); see hub.log")
            self.hub.kill()
            await asyncio.sleep(1)
        raise RuntimeError("the hub would not start")

    async def kill_hub(self, down_for: float) -> bool:
        if "hub" in self.held:
            return False
        self.held.add("hub")
        try:
            self.hub.kill()
            await asyncio.sleep(down_for)
            await self.start_hub()
        finally:
            self.held.discard("hub")
        self.disturb(None)
        await self.check_acked()
        return True

    # -- the controller and the agents -----------------------------------------------------

    async def kill_controller(self, down_for: float) -> bool:
        controller = self.controller
        if controller is None or not controller.alive or "controller" in self.held:
            return False
        if time.monotonic() - controller.started_at < _CONTROLLER_LIFE:
            return False  # let each controller get some ticks done, or no campaign ever ends
        self.held.add("controller")
        try:
            controller.kill()
            await asyncio.sleep(down_for)
            controller.start()
        finally:
            self.held.discard("controller")
        return True

    async def kill_agents(self, rng: random.Random, down_for: float) -> bool:
        free = [i for i, group in enumerate(self.groups) if group.name not in self.held]
        if not free:
            return False
        index = rng.choice(free)
        group = self.groups[index]
        self.held.add(group.name)
        try:
            group.kill()
            self.disturb(self.group_devices[index])
            await asyncio.sleep(down_for)
            group.start()
        finally:
            self.held.discard(group.name)
        self.disturb(self.group_devices[index])
        return True

    def disturb(self, devices: list[str] | None) -> None:
        self.ledger.disturb(devices, time.monotonic())

    def observe(self, what: str) -> None:
        """A process died by itself: a violation of SURVIVED."""
        log.warning("%s", what)
        self.ledger[invariants.SURVIVED].check(False, what)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Start again whatever died without the injector's hand (and say so)."""
        while not stop.is_set():
            await asyncio.sleep(1.0)
            self.ledger[invariants.SURVIVED].check(True, "")
            if not self.hub.alive and "hub" not in self.held:
                self.observe(f"the hub exited by itself (exit {self.hub.returncode}); see hub.log")
                self.held.add("hub")
                try:
                    await self.start_hub()
                finally:
                    self.held.discard("hub")
            for index, group in enumerate(self.groups):
                if group.alive or group.name in self.held:
                    continue
                if group.returncode not in (None, -9):
                    self.observe(f"{group.name} exited by itself (exit {group.returncode}); "
                                 f"see {group.log_path.name}")  # fmt: skip
                group.start()
                self.disturb(self.group_devices[index])

    # -- setup -----------------------------------------------------------------------------

    async def set_up(self) -> None:
        # The server certificate names the proxy's address too; the hub reuses it (it covers
        # the hub's own address) on every start.
        self.hub_dir.mkdir(parents=True, exist_ok=True)
        self.hub_dir.chmod(0o700)
        certs.ensure_certificates(self.hub_dir / "tls", [self.hub_host, self.proxy_host])
        info = await self.start_hub()
        processes.proxy_hub_dir(info, self.hub_host, self.proxy_host, self.proxy_dir)
        self.fleet = TwinManager.from_hub_dir(self.hub_dir, retry=RetryPolicy(attempts=3))
        # the soak's own writes go straight to the hub: a hub killed mid-request makes their
        # outcome as ambiguous as a cut would
        self.via = TwinManager.from_hub_dir(self.hub_dir, retry=RetryPolicy(attempts=2))
        fleet = self.fleet

        def register() -> None:
            for device in self.devices + self.probes:
                fleet.devices.create(device)
                kind = "probe" if device in self.probes else "fleet"
                fleet.twins.update_tags(device, {"soak": kind})

        await asyncio.to_thread(register)
        await self.mqtt.start()
        await self.rest.start()
        for group in self.groups:
            group.start()
        deadline = time.monotonic() + 60 + 2 * self.options.devices
        while time.monotonic() < deadline:
            reporting = await asyncio.to_thread(
                fleet.queries.count, f"{_FLEET} AND IS_DEFINED(properties.reported.firmware)"
            )
            if reporting == len(self.devices):
                break
            await asyncio.sleep(2)
        else:
            raise RuntimeError(f"only {reporting} of {len(self.devices)} devices came up")
        log.info("%d devices up", len(self.devices))

    # -- checks ----------------------------------------------------------------------------

    def _rows(self, text: str) -> list[dict[str, Any]]:
        assert self.fleet is not None
        return list(self.fleet.queries.run(text, page_size=1000))

    async def check_acked(self) -> None:
        acked = dict(self.ledger.acked)  # what was acknowledged before the reads start
        try:
            rows = await asyncio.to_thread(
                self._rows,
                "SELECT deviceId, tags.soakProbe.seq AS seq, properties.reported.soakSeq AS rep "
                "FROM devices WHERE tags.soak = 'probe'",
            )
        except HubError as exc:
            log.info("acked-write check skipped: %s", exc)
            return
        for row in rows:
            key = f"tags:{row['deviceId']}"
            if key in acked:
                self.ledger.check_acked(key, acked[key], row.get("seq"))
            if row["deviceId"] == self.probes[0] and probing.REPORTED_KEY in acked:
                self.ledger.check_acked(
                    probing.REPORTED_KEY, acked[probing.REPORTED_KEY], row.get("rep")
                )

    async def check_fleet(self, *, final: bool = False) -> int:
        """Reported firmware against the disks, and admissions; returns the mismatches."""
        try:
            rows = await asyncio.to_thread(
                self._rows,
                "SELECT deviceId, properties.reported.firmware.currentFwVersion AS version, "
                f"tags.twinfleet AS campaigns FROM devices WHERE {_FLEET}",
            )
        except HubError as exc:
            log.info("fleet check skipped: %s", exc)
            return -1
        now = time.monotonic()
        mismatches = 0
        for row in rows:
            device, reported = row["deviceId"], row.get("version")
            running = invariants.disk_version(self.state_root, device)
            mismatches += reported != running
            if final:
                self.ledger.check_reported_final(device, reported, running)
            else:
                self.ledger.check_reported(device, reported, running, now, self.options.grace)
                installed = invariants.slot_versions(self.state_root, device)
                self.ledger[invariants.REPORTED].check(
                    reported is None or reported in installed,
                    f"{device} reports {reported}, an image it never installed ({installed})",
                )
            for campaign, progress in (row.get("campaigns") or {}).items():
                self.ledger.check_admission(campaign, device, int(progress.get("attempt") or 0),
                                            progress.get("admittedAt"))  # fmt: skip
        return mismatches

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(3.0)
            if "hub" in self.held:
                continue
            await self.check_acked()
            await self.check_fleet()

    # -- campaigns -------------------------------------------------------------------------

    def _image(self, version: str) -> Path:
        path = self.images / f"firmware-{version}.bin"
        path.write_bytes(f"soak image {version}\n".encode() + self._rng.randbytes(32 * 1024))
        return path

    def _create(self, campaign_id: str, version: str, image: Path) -> int:
        """Upload the image and create the campaign; returns its devices."""
        assert self.via is not None
        assert self.fleet is not None
        try:
            Campaign.load(self.fleet, campaign_id)
            return self.fleet.queries.count(
                _FLEET
            )  # an earlier try created it; its answer was lost
        except HubError:
            pass
        artifact = self.via.artifact_store().upload(image, ttl=3600)
        assert artifact.url is not None  # an upload's answer always carries its download URL
        url = artifact.url
        spec = CampaignSpec(
            id=campaign_id,
            pattern=FirmwareUpdate(version=version, package_uri=url,
                                   check_value=artifact.sha256, package_size=artifact.size),
            target=_FLEET,
            rollout=Rollout(per_minute=max(60.0, 3.0 * self.options.devices)),
            retries=Retries(max_attempts=3, backoff_seconds=5),
            timeout_seconds=self.options.campaign_timeout,
        )  # fmt: skip
        try:
            Campaign.create(self.via, spec)
        except Conflict:
            pass
        return self.fleet.queries.count(_FLEET)

    async def _before(self) -> dict[str, set[str | None]]:
        """Each device's images before a campaign: the one it runs and the one it is told to."""
        rows = await asyncio.to_thread(
            self._rows,
            "SELECT deviceId, properties.desired.firmware.fwVersion AS desired FROM devices "
            f"WHERE {_FLEET}",
        )
        return {row["deviceId"]: {invariants.disk_version(self.state_root, row["deviceId"]),
                                  row.get("desired")} for row in rows}  # fmt: skip

    async def run_campaign(self, number: int, deadline: float) -> None:
        campaign_id, version = f"soak_{number}", f"{number + 1}.0.0"
        image = self._image(version)
        while True:
            try:
                before = await self._before()
                total = await asyncio.to_thread(self._create, campaign_id, version, image)
                break
            except HubError as exc:
                log.info("creating %s: %s; trying again", campaign_id, exc)
                await asyncio.sleep(2)
        self.campaigns.append(campaign_id)
        log.info("campaign %s: %d devices to %s", campaign_id, total, version)
        self.controller = controller = processes.controller(
            campaign_id, self.proxy_dir, self.logs, self.https_proxy
        )
        controller.start()
        settle_by = deadline + self.options.campaign_timeout + 180
        while time.monotonic() < settle_by:
            await asyncio.sleep(1.0)
            if controller.alive or "controller" in self.held:
                continue
            if controller.returncode in _SETTLED_EXITS:
                break
            self.observe(f"the controller of {campaign_id} exited with {controller.returncode} "
                         f"(see {controller.log_path.name}); started again")  # fmt: skip
            controller.start()
        else:
            controller.kill()
        self.controller = None
        await self._judge(campaign_id, version, total, before)

    async def _judge(
        self, campaign_id: str, version: str, total: int, before: dict[str, set[str | None]]
    ) -> None:
        assert self.fleet is not None
        fleet = self.fleet
        for _ in range(30):
            try:
                status = await asyncio.to_thread(lambda: Campaign.load(fleet, campaign_id).status())
                devices = await asyncio.to_thread(
                    lambda: Campaign.load(fleet, campaign_id).devices()
                )
                break
            except HubError:
                await asyncio.sleep(2)
        else:
            self.ledger[invariants.CONSISTENT].check(False, f"{campaign_id}: unreadable")
            return
        counted = sum(status.counts.values())
        self.ledger[invariants.CONSISTENT].check(
            status.settled and counted == total == len(devices)
            and not status.counts.get("queued") and not status.counts.get("admitted"),
            f"{campaign_id}: {status.status} with counts {status.counts} for {total} devices",
        )  # fmt: skip
        for device, progress in devices:
            running = invariants.disk_version(self.state_root, device)
            allowed = before.get(device, set()) | {version}
            self.ledger[invariants.OLD_OR_NEW].check(
                running in allowed, f"{campaign_id}: {device} runs {running}, not one of {allowed}"
            )
            if progress.state == "succeeded":
                self.ledger[invariants.OLD_OR_NEW].check(
                    running == version,
                    f"{campaign_id}: {device} succeeded but runs {running}, not {version}",
                )
        log.info("campaign %s: %s %s", campaign_id, status.status, status.counts)

    async def campaigns_loop(self, deadline: float) -> None:
        number = 0
        while time.monotonic() < deadline:
            number += 1
            await self.run_campaign(number, deadline)

    # -- the run ---------------------------------------------------------------------------

    async def heal(self) -> None:
        """Undo every standing fault and let the fleet converge."""
        for proxy in (self.mqtt, self.rest):
            proxy.heal()
        deadline = time.monotonic() + 60 + self.options.devices
        while time.monotonic() < deadline:
            if await self.check_fleet_quietly() == 0:
                return
            await asyncio.sleep(3)

    async def check_fleet_quietly(self) -> int:
        try:
            rows = await asyncio.to_thread(
                self._rows,
                "SELECT deviceId, properties.reported.firmware.currentFwVersion AS version "
                f"FROM devices WHERE {_FLEET}",
            )
        except HubError:
            return -1
        return sum(
            row.get("version") != invariants.disk_version(self.state_root, row["deviceId"])
            for row in rows
        )

    async def run(self) -> None:
        """Set up, soak, settle and judge; every process is stopped whatever happens."""
        try:
            await self.set_up()
            await self._soak()
        finally:
            await self.shut_down()

    async def _soak(self) -> None:
        assert self.via is not None
        assert self.fleet is not None
        fleet = self.fleet
        stop_faults, stop_all = asyncio.Event(), asyncio.Event()
        deadline = time.monotonic() + self.options.minutes * 60
        info = json.loads((self.proxy_dir / "hub.json").read_text())
        ca_pem = Path(info["caCertificatePath"]).read_text()
        probe_cs = await asyncio.to_thread(
            fleet.devices.connection_string, self.probes[0], gateway_host_name=self.proxy_host
        )
        reporter = probing.ReportedProbe(probe_cs, ca_pem, self.ledger)
        reporter.start()
        background = [
            asyncio.create_task(self.supervise(stop_all)),
            asyncio.create_task(self.watch(stop_all)),
            asyncio.create_task(
                probing.write_tags(self.via, self.probes[1:], self.ledger, stop_all)
            ),
        ]
        injector = asyncio.create_task(self.injector.run(stop_faults))
        campaigns = asyncio.create_task(self.campaigns_loop(deadline))
        try:
            # a campaign loop that fails (a bug of the soak's own) ends the soak at once
            await asyncio.wait([campaigns], timeout=max(0.0, deadline - time.monotonic()))
            if campaigns.done() and campaigns.exception() is not None:
                await campaigns
            stop_faults.set()
            await injector
            log.info("faults stopped; healing and settling")
            await self.heal()
            await campaigns
            await self.heal()
            await self.check_acked()
            await self.check_fleet(final=True)
        finally:
            stop_faults.set()
            stop_all.set()
            for task in (injector, campaigns, *background):
                task.cancel()
            await asyncio.gather(injector, campaigns, *background, return_exceptions=True)
            await asyncio.to_thread(reporter.stop)

    async def shut_down(self) -> None:
        if self.controller is not None:
            await asyncio.to_thread(self.controller.stop)
        for group in self.groups:
            await asyncio.to_thread(group.stop)
        await self.mqtt.close()
        await self.rest.close()
        await asyncio.to_thread(self.hub.stop)
