"""Durable reported-patch round trips with 1,000 connected devices, beside mosquitto QoS 1.

Each device sends a reported patch, waits for its answer, and sends the next, for a fixed time;
the hub acknowledges each (the twin response and the PUBACK) only after the group commit holding
it is durable in SQLite (`synchronous=FULL`). mosquitto 2, with persistence on, takes the same
clients publishing QoS 1 to a topic of their own and acknowledging with PUBACK. mosquitto's
persistence saves its in-memory state to disk on an interval or at exit, not before each PUBACK.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
import time
from pathlib import Path

from benchmarks import _results
from benchmarks._hubs import hub_process
from benchmarks._scale import (
    LeanClient,
    fill_hub,
    hub_password,
    mosquitto_available,
    mosquitto_process,
    raise_fd_limit,
)
from local_hub import certs
from local_hub.mqtt import codec

COUNT = 1_000
SECONDS = float(__import__("os").environ.get("BENCH_SECONDS", "8"))
HUB_HOST = "127.0.0.204"
MOSQUITTO_HOST = "127.0.0.205"
SOURCES = [f"127.0.11.{n}" for n in range(1, 3)]


async def _round_trips(
    host: str, context: ssl.SSLContext, logins: list[tuple[str, str, bytes]], twin: bool
) -> float:
    clients: list[LeanClient] = []
    gate = asyncio.Semaphore(64)

    async def connect(i: int) -> None:
        client = LeanClient()
        client_id, username, password = logins[i]
        async with gate:
            await client.connect(host, 8883, context, client_id, username, password,
                                 source=SOURCES[i % len(SOURCES)])  # fmt: skip
        clients.append(client)

    await asyncio.gather(*(connect(i) for i in range(len(logins))))
    done = 0
    stop = asyncio.Event()

    async def loop(client: LeanClient, client_id: str) -> None:
        nonlocal done
        n = 0
        while not stop.is_set():
            n += 1
            body = json.dumps({"telemetry": {"seq": n, "temperature": 20 + n % 7}}).encode()
            topic = (f"$iothub/twin/PATCH/properties/reported/?$rid={n}" if twin
                     else f"bench/{client_id}/reported")  # fmt: skip
            client.send(codec.Publish(topic, body, qos=1, packet_id=n % 65535 + 1))
            answered, acked = not twin, False
            while not (answered and acked):
                packet = await client.receive()
                if isinstance(packet, codec.Publish):
                    answered = True
                elif isinstance(packet, codec.PubAck):
                    acked = True
                elif packet is None:
                    return
            done += 1

    started = time.perf_counter()
    tasks = [asyncio.create_task(loop(c, logins[i][0])) for i, c in enumerate(clients)]
    await asyncio.sleep(SECONDS)
    stop.set()
    counted, elapsed = done, time.perf_counter() - started
    await asyncio.wait(tasks, timeout=30)
    for client in clients:
        client.abort()
    return counted / elapsed


def main() -> None:
    raise_fd_limit()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "hub"
        data_dir.mkdir()
        keys = fill_hub(data_dir, COUNT, prefix="durable")
        with hub_process(data_dir, HUB_HOST) as (info, _pid):
            context = ssl.create_default_context(cafile=info["caCertificatePath"])
            logins = [(d, *hub_password(info, d, k)) for d, k in sorted(keys.items())]
            ours = asyncio.run(_round_trips(HUB_HOST, context, logins, twin=True))
        print(f"   hub: {ours:,.0f} durable reported-patch round trips/s from {COUNT:,} devices",
              flush=True)  # fmt: skip
        theirs: float | None = None
        if mosquitto_available():
            tls_dir = Path(tmp) / "mosquitto-tls"
            paths = certs.ensure_certificates(tls_dir, [MOSQUITTO_HOST])
            with mosquitto_process(Path(tmp) / "mosquitto", MOSQUITTO_HOST, 8883, tls_dir,
                                   persistence=True):  # fmt: skip
                mcontext = ssl.create_default_context(cafile=str(paths.ca_cert))
                logins = [(d, "", b"") for d in sorted(keys)]
                theirs = asyncio.run(_round_trips(MOSQUITTO_HOST, mcontext, logins, twin=False))
            print(f"   mosquitto (persistence on): {theirs:,.0f} QoS 1 round trips/s", flush=True)
    _results.record(_results.Row(
        measure=f"durable reported-patch round trips ({COUNT:,} devices)",
        value=ours, unit="/s", anchor="mosquitto 2 QoS 1, persistence on", anchor_value=theirs,
        goal=">= 10,000/s and >= 0.5x mosquitto",
        met=ours >= 10_000 and (theirs is None or ours >= 0.5 * theirs),
    ))  # fmt: skip
