"""Local hub: reported-property PATCH round trips per second from 200 concurrent device
connections, and the memory the hub process holds per connected device.

The hub runs in its own process (`python -m twinfleet hub serve`) on a loopback address; the
devices are asyncio MQTT clients over TLS built on the hub's codec, each sending reported patches
one after another and waiting for the 204 before the next.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from azure.iot.hub import IoTHubRegistryManager

from benchmarks._hubs import RawDevice, hub_process, rss_kib
from local_hub.mqtt import codec

DEVICES = 200
PATCHES_PER_DEVICE = 25
HOST = "127.0.0.201"


async def _device(info: dict[str, Any], device_id: str, key: str, ready: asyncio.Event,
                  connected: list[int], go: asyncio.Event,
                  gate: asyncio.Semaphore) -> int:  # fmt: skip
    device = RawDevice(info, HOST, device_id, key)
    async with gate:  # the hub closes more than 64 unaccepted connections from one address
        await device.connect()
    connected.append(1)
    if len(connected) == DEVICES:
        ready.set()
    await go.wait()
    for n in range(PATCHES_PER_DEVICE):
        topic = f"$iothub/twin/PATCH/properties/reported/?$rid={n}"
        body = json.dumps({"telemetry": {"seq": n, "temperature": 20 + n % 7}}).encode()
        device.send(codec.Publish(topic, body, qos=1, packet_id=n + 1))
        got_response = got_ack = False
        while not (got_response and got_ack):
            packet = await device.receive()
            if isinstance(packet, codec.Publish):
                if not packet.topic.startswith("$iothub/twin/res/204/"):
                    raise RuntimeError(f"unexpected answer {packet.topic}")
                got_response = True
            elif isinstance(packet, codec.PubAck):
                got_ack = True
    device.close()
    return PATCHES_PER_DEVICE


async def _run(info: dict[str, Any], keys: dict[str, str], pid: int) -> None:
    ready, go = asyncio.Event(), asyncio.Event()
    connected: list[int] = []
    before = rss_kib(pid)
    gate = asyncio.Semaphore(50)
    tasks = [
        asyncio.create_task(_device(info, d, k, ready, connected, go, gate))
        for d, k in keys.items()
    ]
    await asyncio.wait_for(ready.wait(), 120)
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    started = time.perf_counter()
    go.set()
    done = sum(await asyncio.gather(*tasks))
    elapsed = time.perf_counter() - started
    print(
        f"   {DEVICES} connected devices: hub RSS {before / 1024:.1f} MiB -> "
        f"{after / 1024:.1f} MiB, "
        f"{(after - before) / DEVICES:.1f} KiB per connected device"
    )
    print(
        f"   reported PATCH round trips: {done:,} in {elapsed:.2f} s = {done / elapsed:,.0f}/s "
        f"(each durable in SQLite before its 204)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, hub_process(Path(tmp) / "hub", HOST) as (info, pid):
        manager = IoTHubRegistryManager.from_connection_string(info["serviceConnectionString"])
        manager.protocol.config.connection.verify = info["caCertificatePath"]

        def create(i: int) -> tuple[str, str]:
            device = manager.create_device_with_sas(f"bench-{i:04d}", None, None, "enabled")
            return device.device_id, device.authentication.symmetric_key.primary_key

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            keys = dict(pool.map(create, range(DEVICES)))
        asyncio.run(_run(info, keys, pid))
