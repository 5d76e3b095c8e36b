"""Campaign controller overhead: admit and converge 1,000 devices with no rate limit, and the
controller's cost per device in hub calls (queries pages and twin writes).

Devices are raw asyncio MQTT clients that answer a desired `configuration` patch by reporting it
applied, so the figure is the controller's and the hub's, not the agents'.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._hubs import RawDevice, connect_all, hub_process
from local_hub.mqtt import codec
from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange, Rollout
from twin_manager import TwinManager

DEVICES = 1000
HOST = "127.0.0.204"


async def _apply(device: RawDevice) -> None:
    rid = 0
    while (packet := await device.receive()) is not None:
        if isinstance(packet, codec.Publish) and "/PATCH/properties/desired/" in packet.topic:
            patch = json.loads(packet.payload)
            if "configuration" in patch:
                rid += 1
                section = patch["configuration"]  # reported back with its campaign's tag
                applied = {"version": section["version"], "status": "applied", "error": None,
                           "campaignId": section.get("campaignId")}  # fmt: skip
                body = {"configuration": applied}
                topic = f"$iothub/twin/PATCH/properties/reported/?$rid={rid}"
                device.send(codec.Publish(topic, json.dumps(body).encode(), 1, rid))


def _devices(
    info: dict[str, Any], keys: dict[str, str], ready: threading.Event, stop: threading.Event
) -> None:
    async def main() -> None:
        devices = [RawDevice(info, HOST, d, k) for d, k in keys.items()]
        await connect_all(
            devices, ("$iothub/twin/PATCH/properties/desired/#", "$iothub/twin/res/#")
        )
        tasks = [asyncio.create_task(_apply(d)) for d in devices]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for device in devices:
            device.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, hub_process(Path(tmp) / "hub", HOST) as (info, _):
        fleet = TwinManager.from_connection_string(
            info["serviceConnectionString"], ca_file=info["caCertificatePath"]
        )
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda i: fleet.devices.create(f"c-{i:04d}"), range(DEVICES)))
        keys = {d.device_id: d.primary_key or "" for d in made}
        ready, stop = threading.Event(), threading.Event()
        thread = threading.Thread(target=_devices, args=(info, keys, ready, stop))
        thread.start()
        ready.wait(300)
        calls: collections.Counter[str] = collections.Counter()
        sdk_call = fleet._sdk.call

        def counted(what: str, operation: Any, device_id: str | None = None) -> Any:
            calls["query pages" if what == "Querying" else "twin reads" if "Reading" in what
                  else "twin writes" if "Updating" in what else "other"] += 1  # fmt: skip
            return sdk_call(what, operation, device_id)

        fleet._sdk.call = counted  # type: ignore[method-assign]
        spec = CampaignSpec(
            id="bench",
            pattern=ConfigurationChange(version=1, settings={"a": 1}),
            target="IS_DEFINED(deviceId)",
            rollout=Rollout(per_minute=1e9),
        )
        started = time.perf_counter()
        campaign = Campaign.create(fleet, spec)
        ticks = 0
        while (status := campaign.tick()).status != "completed":
            ticks += 1
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
        print(
            f"   {status.counts.get('succeeded', 0):,} devices admitted and converged in "
            f"{elapsed:.1f} s ({DEVICES / elapsed:,.0f} devices/s, {ticks} controller passes)"
        )
        per_device = ", ".join(f"{n / DEVICES:.2f} {k}" for k, n in sorted(calls.items()))
        print(f"   controller cost per device: {per_device}")
