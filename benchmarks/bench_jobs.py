"""Jobs on the local hub: a twin-update job reaching 1,000 connected devices (the desired patch
delivered to each), and a direct-method job over 1,000 connected devices; devices/s for both."""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._hubs import RawDevice, connect_all, hub_process
from local_hub.mqtt import codec
from twin_manager import TwinManager

DEVICES = 1000
HOST = "127.0.0.203"


async def _serve(device: RawDevice, patched: asyncio.Event, counter: list[int]) -> None:
    while (packet := await device.receive()) is not None:
        if not isinstance(packet, codec.Publish):
            continue
        if packet.topic.startswith("$iothub/twin/PATCH/properties/desired/"):
            counter[0] += 1
            if counter[0] == DEVICES:
                patched.set()
        elif packet.topic.startswith("$iothub/methods/POST/"):
            rid = packet.topic.split("$rid=")[1]
            device.send(
                codec.Publish(f"$iothub/methods/res/200/?$rid={rid}", b'{"ok": true}', 1, 1)
            )


async def _run(info: dict[str, Any], fleet: TwinManager, keys: dict[str, str]) -> None:
    devices = [RawDevice(info, HOST, d, k) for d, k in keys.items()]
    subscriptions = ("$iothub/twin/PATCH/properties/desired/#", "$iothub/methods/POST/#")
    await connect_all(devices, subscriptions)
    patched, counter = asyncio.Event(), [0]
    servers = [asyncio.create_task(_serve(d, patched, counter)) for d in devices]
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    await loop.run_in_executor(
        None, lambda: fleet.jobs.schedule_twin_update("IS_DEFINED(deviceId)", desired={"fw": "2.0"})
    )
    await asyncio.wait_for(patched.wait(), 300)
    elapsed = time.perf_counter() - started
    print(
        f"   twin-update job: desired patch delivered to {DEVICES:,} connected devices in "
        f"{elapsed:.2f} s = {DEVICES / elapsed:,.0f} devices/s"
    )
    started = time.perf_counter()
    job = await loop.run_in_executor(
        None, lambda: fleet.jobs.schedule_method("IS_DEFINED(deviceId)", "ping", None, timeout=30)
    )
    done = await loop.run_in_executor(None, lambda: fleet.jobs.wait(job.job_id, 300, poll=0.05))
    elapsed = time.perf_counter() - started
    print(
        f"   method job: {done.statistics.succeeded_count:,}/{DEVICES:,} devices answered in "
        f"{elapsed:.2f} s = {DEVICES / elapsed:,.0f} devices/s"
    )
    for device in devices:
        device.close()
    for task in servers:
        task.cancel()
    await asyncio.gather(*servers, return_exceptions=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, hub_process(Path(tmp) / "hub", HOST) as (info, _):
        fleet = TwinManager.from_connection_string(
            info["serviceConnectionString"], ca_file=info["caCertificatePath"]
        )
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            made = pool.map(lambda i: fleet.devices.create(f"job-{i:04d}"), range(DEVICES))
            keys = {d.device_id: d.primary_key or "" for d in made}
        asyncio.run(_run(info, fleet, keys))
