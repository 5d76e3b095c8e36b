"""What the benchmarks share: a hub in a child process and raw asyncio MQTT devices."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local_hub import tokens
from local_hub.mqtt import codec

__all__ = ["RawDevice", "connect_all", "hub_process", "rss_kib"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@contextmanager
def hub_process(data_dir: Path, host: str, *options: str) -> Iterator[tuple[dict[str, Any], int]]:
    """`python -m twinfleet hub serve` on `host` (plus `options`, e.g. `--tier S1`); yields
    hub.json's facts and the pid."""
    (data_dir / "hub.json").unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "twinfleet", "hub", "serve", "--data-dir", str(data_dir),
         "--host", host, "--service-port", "0", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (data_dir / "hub.json").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the hub did not start")
            time.sleep(0.05)
        yield json.loads((data_dir / "hub.json").read_text()), process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


class RawDevice:
    """A device speaking IoT Hub's MQTT directly (lighter than an SDK client per device)."""

    def __init__(self, info: dict[str, Any], host: str, device_id: str, key: str) -> None:
        self.info, self.host, self.device_id, self.key = info, host, device_id, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self, subscriptions: tuple[str, ...] = ()) -> None:
        context = ssl.create_default_context(cafile=self.info["caCertificatePath"])
        self.reader, self.writer = await asyncio.open_connection(
            self.host, 8883, ssl=context, server_hostname=self.host
        )
        hub = self.info["deviceHostName"]
        resource = f"{hub}/devices/{self.device_id}"
        token = tokens.make_sas_token(resource, base64.b64decode(self.key), int(time.time()) + 3600)
        username = f"{hub}/{self.device_id}/?api-version=2019-10-01"
        self.send(codec.Connect(self.device_id, 60, False, username, token.encode()))
        ack = await self.receive()
        if not isinstance(ack, codec.ConnAck) or ack.return_code != 0:
            raise RuntimeError(f"device {self.device_id} was refused: {ack}")
        if subscriptions:
            self.send(codec.Subscribe(1, tuple((topic, 1) for topic in subscriptions)))
            if not isinstance(await self.receive(), codec.SubAck):
                raise RuntimeError("no SUBACK")

    def send(self, packet: codec.Packet) -> None:
        assert self.writer is not None
        self.writer.write(codec.encode(packet))

    async def receive(self) -> codec.Packet | None:
        assert self.reader is not None
        return await codec.read_packet(self.reader, 1 << 20)

    def close(self) -> None:
        if self.writer is not None:
            self.send(codec.Disconnect())
            self.writer.close()


async def connect_all(devices: list[RawDevice], subscriptions: tuple[str, ...]) -> None:
    """Connect and subscribe every device, fewer at once than the hub lets one address hold
    before their CONNECTs are accepted (`ConnectionLimits.mqtt_unauthenticated_per_source`,
    64: more are closed at once)."""
    for start in range(0, len(devices), 50):
        await asyncio.gather(*(d.connect(subscriptions) for d in devices[start : start + 50]))
