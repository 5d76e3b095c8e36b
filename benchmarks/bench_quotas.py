"""A firmware campaign over 1,000 devices on hubs with IoT Hub's S1 and S3 quotas (one unit):
its wall time beside the least time the quotas allow for the calls it made, and their ratio.

The devices are raw asyncio MQTT clients that answer a desired `firmware` patch by reporting the
new version current, so the figure is the controller's pacing against the hub's throttles. The
fleet is registered on the hub before it gets its tier (registering 1,000 devices alone takes
nine minutes of S1's identity-registry quota). The least time is, over every throttle, the time
its rate needs for what the campaign used beyond the minute of burst the hub banks:
`max((used - burst) / rate)`. No device may fail: a throttle is waited out, never a failure.
The same campaign on a hub without quotas runs first, as the peer: what the controller and this
hub (one fsync per twin write) take on their own. A device whose reported patch is refused (429)
sends it again a moment later, as the agent does.

`BENCH_QUOTA_DEVICES` (default 1,000) and `BENCH_QUOTA_TIERS` (default `none,S1,S3`) make a
smaller run for development; `BENCH_QUOTA_HOST` moves the hubs to another loopback address.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks import _results
from benchmarks._hubs import RawDevice, hub_process
from local_hub import tokens
from local_hub.mqtt import codec
from patterns.campaigns import Campaign, CampaignSpec, CampaignStatus, FirmwareUpdate, Rollout
from patterns.campaigns.pacing import Pacing, run_paced
from twin_manager import TwinManager

DEVICES = int(os.environ.get("BENCH_QUOTA_DEVICES", "1000"))
TIERS = [t.strip() for t in os.environ.get("BENCH_QUOTA_TIERS", "none,S1,S3").split(",")]
HOST = os.environ.get("BENCH_QUOTA_HOST", "127.0.0.205")


async def _update(device: RawDevice) -> None:
    rid = 0
    unanswered: dict[str, bytes] = {}  # reported patches by request id, until the hub answers

    def report(body: bytes) -> None:
        nonlocal rid
        rid += 1
        unanswered[str(rid)] = body
        topic = f"$iothub/twin/PATCH/properties/reported/?$rid={rid}"
        device.send(codec.Publish(topic, body, 1, rid % 65535 + 1))

    loop = asyncio.get_running_loop()
    while (packet := await device.receive()) is not None:
        if not isinstance(packet, codec.Publish):
            continue
        if "/PATCH/properties/desired/" in packet.topic:
            firmware = json.loads(packet.payload).get("firmware")
            if firmware:
                body = {"firmware": {"currentFwVersion": firmware["fwVersion"],
                                     "fwUpdateStatus": "current",
                                     "campaignId": firmware["campaignId"]}}  # fmt: skip
                report(json.dumps(body).encode())
        elif packet.topic.startswith("$iothub/twin/res/"):
            status = packet.topic.split("/")[3]
            refused = unanswered.pop(packet.topic.rpartition("$rid=")[2], None)
            if status == "429" and refused is not None:  # throttled: again in a moment
                loop.call_later(1 + random.random(), report, refused)


async def _connect(device: RawDevice) -> None:
    """Connect, and again after a moment when the hub (busy on a loaded machine) drops the
    handshake, as the device SDK would."""
    for attempt in range(5):
        try:
            await device.connect(("$iothub/twin/PATCH/properties/desired/#", "$iothub/twin/res/#"))
            return
        except (RuntimeError, OSError) as exc:
            if device.writer is not None:
                device.writer.close()
            if attempt == 4:
                raise RuntimeError(f"{device.device_id} could not connect: {exc}") from exc
            await asyncio.sleep(1 + attempt)


def _devices(
    info: dict[str, Any], keys: dict[str, str], ready: threading.Event, stop: threading.Event
) -> None:
    async def main() -> None:
        devices = [RawDevice(info, HOST, d, k) for d, k in keys.items()]
        for start in range(0, len(devices), 50):
            await asyncio.gather(*(_connect(d) for d in devices[start : start + 50]))
        tasks = [asyncio.create_task(_update(d)) for d in devices]
        ready.set()
        pinged = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.1)
            if time.monotonic() - pinged > 20:  # keep-alive: the hub drops idle connections
                pinged = time.monotonic()
                for device in devices:
                    device.send(codec.PingReq())
        for device in devices:
            device.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def _quotas(info: dict[str, Any]) -> dict[str, Any]:
    parts = dict(p.split("=", 1) for p in info["serviceConnectionString"].split(";"))
    token = tokens.make_sas_token(
        parts["HostName"], base64.b64decode(parts["SharedAccessKey"]), int(time.time()) + 600
    )
    response = requests.get(
        f"https://{parts['HostName']}/quotas",
        headers={"Authorization": f"{token}&skn=iothubowner"},
        params={"api-version": "2021-04-12"},
        verify=info["caCertificatePath"],
        timeout=30,
    )
    response.raise_for_status()
    quotas: dict[str, Any] = response.json()
    return quotas


def _least_time(used: dict[str, Any]) -> tuple[float, str]:
    worst, which = 0.0, "none"
    for name, throttle in used["throttles"].items():
        need = (throttle["admitted"] - throttle["burst"]) / throttle["perSecond"]
        if need > worst:
            worst, which = need, name
    return worst, which


def _campaign(
    tier: str | None, data_dir: Path, keys: dict[str, str], peer: float | None = None
) -> float:
    options = ("--tier", tier, "--units", "1") if tier else ()
    with hub_process(data_dir, HOST, *options) as (info, _):
        fleet = TwinManager.from_connection_string(
            info["serviceConnectionString"], ca_file=info["caCertificatePath"]
        )
        ready, stop = threading.Event(), threading.Event()
        thread = threading.Thread(target=_devices, args=(info, keys, ready, stop))
        thread.start()
        while not ready.wait(1):
            if not thread.is_alive():
                raise RuntimeError("the devices could not connect")
        spec = CampaignSpec(
            id=f"fw_{(tier or 'none').lower()}",
            pattern=FirmwareUpdate(
                version="2.0.0",
                package_uri="https://example.invalid/fw-2.0.0.bin",
                check_value="0" * 64,
            ),
            target="IS_DEFINED(deviceId)",
            rollout=Rollout(per_minute=1e9),
            timeout_seconds=3600,
        )
        started = time.perf_counter()
        campaign = Campaign.create(fleet, spec)
        pacing = Pacing.for_tier(tier, share=1.0) if tier else Pacing()
        ticks = 0
        ended: list[str] = []  # when each tick ended, and the counts it saw

        def count(status: CampaignStatus) -> None:
            nonlocal ticks
            ticks += 1
            counts = {str(k): v for k, v in status.counts.items()}
            ended.append(f"{time.perf_counter() - started:.0f} s {counts}")

        status = run_paced(campaign, pacing, on_tick=count)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
        used = _quotas(info)
    done = status.counts.get("succeeded", 0)
    spent = fleet.usage.snapshot()
    if tier is None:
        print(f"   no tier (the peer): {done:,} of {DEVICES:,} succeeded in {elapsed:.1f} s "
              f"({ticks} ticks, {spent.get('queries')} queries, {spent.get('twinUpdates')} twin "
              "updates), the controller's and this hub's own pace")  # fmt: skip
        return elapsed
    least, limiting = _least_time(used)
    throttled = {n: t["throttled"] for n, t in used["throttles"].items() if t["throttled"]}
    used_by = {n: t["admitted"] for n, t in used["throttles"].items() if t["admitted"]}
    ratio = f"{elapsed / least:.2f}x" if least > 0 else "n/a (within the burst)"
    print(
        f"   {tier}: {done:,} of {DEVICES:,} succeeded, {status.failed} failed, in {elapsed:.1f} s "
        f"({ticks} ticks); the quotas allow {least:.1f} s at least ({limiting}); ratio {ratio}"
        + (f"; {elapsed / peer:.2f}x the peer's time" if peer else "")
        + "\n"
        f"       used {used_by}; refused (429) {throttled or 'none'}\n"
        f"       ticks ended at {'; '.join(ended)}"
    )
    if least > 0:
        _results.record(_results.Row(
            f"firmware campaign, {DEVICES:,} devices, {tier} x1: wall time", elapsed, "s",
            "least time its quotas allow", least, "<= 1.5x", elapsed <= 1.5 * least,
            f"limited by {limiting}; {status.failed} failed",
        ))  # fmt: skip
    return elapsed


def _register(data_dir: Path) -> dict[str, str]:
    """Register the fleet on the hub before it has a tier; returns the devices' keys."""
    with hub_process(data_dir, HOST) as (info, _):
        fleet = TwinManager.from_connection_string(
            info["serviceConnectionString"], ca_file=info["caCertificatePath"]
        )
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda i: fleet.devices.create(f"q-{i:04d}"), range(DEVICES)))
    return {d.device_id: d.primary_key or "" for d in made}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        peer = None
        for name in TIERS:
            tier = None if name.lower() == "none" else name.upper()
            data_dir = Path(tmp) / name
            elapsed = _campaign(tier, data_dir, _register(data_dir), peer)
            peer = elapsed if tier is None else peer
