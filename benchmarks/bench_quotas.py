"""A firmware campaign over 1,000 devices on hubs with IoT Hub's S1 and S3 quotas (one unit):
its wall time beside the least time the quotas allow for the calls it made, and their ratio.

The devices are raw asyncio MQTT clients that answer a desired `firmware` patch by reporting the
new version current, so the figure is the controller's pacing against the hub's throttles. The
fleet is registered on the hub before it gets its tier (registering 1,000 devices alone takes
nine minutes of S1's identity-registry quota). The least time is, over every throttle, the time
its rate needs for what the campaign used beyond the minute of burst the hub banks:
`max((used - burst) / rate)`. No device may fail: a throttle is waited out, never a failure.
The same campaign on a hub without quotas runs first, as the peer: what the controller and this
hub (one fsync per twin write) take on their own.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks._hubs import RawDevice, hub_process
from local_hub import tokens
from local_hub.mqtt import codec
from patterns.campaigns import Campaign, CampaignSpec, FirmwareUpdate, Rollout
from patterns.campaigns.pacing import Pacing, run_paced
from twin_manager import TwinManager

DEVICES = 1000
HOST = "127.0.0.205"


async def _update(device: RawDevice) -> None:
    rid = 0
    while (packet := await device.receive()) is not None:
        if isinstance(packet, codec.Publish) and "/PATCH/properties/desired/" in packet.topic:
            firmware = json.loads(packet.payload).get("firmware")
            if firmware:
                rid += 1
                body = {"firmware": {"currentFwVersion": firmware["fwVersion"],
                                     "fwUpdateStatus": "current",
                                     "campaignId": firmware["campaignId"]}}  # fmt: skip
                topic = f"$iothub/twin/PATCH/properties/reported/?$rid={rid}"
                device.send(codec.Publish(topic, json.dumps(body).encode(), 1, rid))


def _devices(
    info: dict[str, Any], keys: dict[str, str], ready: threading.Event, stop: threading.Event
) -> None:
    async def main() -> None:
        devices = [RawDevice(info, HOST, d, k) for d, k in keys.items()]
        for start in range(0, len(devices), 100):
            await asyncio.gather(
                *(
                    d.connect(("$iothub/twin/PATCH/properties/desired/#", "$iothub/twin/res/#"))
                    for d in devices[start : start + 100]
                )
            )
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


def _campaign(tier: str | None, data_dir: Path, keys: dict[str, str]) -> None:
    options = ("--tier", tier, "--units", "1") if tier else ()
    with hub_process(data_dir, HOST, *options) as (info, _):
        fleet = TwinManager.from_connection_string(
            info["serviceConnectionString"], ca_file=info["caCertificatePath"]
        )
        ready, stop = threading.Event(), threading.Event()
        thread = threading.Thread(target=_devices, args=(info, keys, ready, stop))
        thread.start()
        ready.wait(300)
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
        status = run_paced(campaign, pacing)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
        used = _quotas(info)
    if tier is None:
        done = status.counts.get("succeeded", 0)
        print(f"   no tier (the peer): {done:,} of {DEVICES:,} succeeded in {elapsed:.1f} s, "
              "the controller's and this hub's own pace")  # fmt: skip
        return
    least, limiting = _least_time(used)
    throttled = sum(t["throttled"] for t in used["throttles"].values())
    queries = used["throttles"]["queries"]["admitted"]
    ratio = f"{elapsed / least:.2f}x" if least > 0 else "n/a (within the burst)"
    print(
        f"   {tier}: {status.counts.get('succeeded', 0):,} of {DEVICES:,} succeeded, "
        f"{status.failed} failed, in {elapsed:.1f} s; the quotas allow {least:.1f} s at least "
        f"({limiting}); ratio {ratio}; {queries} queries, {throttled} requests throttled"
    )


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
        for tier in (None, "S1", "S3"):
            data_dir = Path(tmp) / (tier or "none")
            _campaign(tier, data_dir, _register(data_dir))
