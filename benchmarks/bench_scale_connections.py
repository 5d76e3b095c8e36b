"""Hub RSS per idle TLS device connection with 10,000 devices connected, beside mosquitto 2.

10,000 registered devices connect over MQTT/TLS (CONNECT with a SAS token, wait for CONNACK) and
stay idle; the hub's resident memory before and after, divided by the count, is the cost of one
connection. mosquitto, with a TLS listener on the same certificate, takes the same 10,000 clients
(same client code, anonymous) in the same run. Clients are spread over several loopback source
addresses so ephemeral ports never run short.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import _results
from benchmarks._hubs import hub_process, rss_kib
from benchmarks._scale import (
    LeanClient,
    fill_hub,
    hub_password,
    mosquitto_available,
    mosquitto_process,
    raise_fd_limit,
)
from local_hub import certs

COUNT = 10_000
HUB_HOST = "127.0.0.202"
MOSQUITTO_HOST = "127.0.0.203"
SOURCES = [f"127.0.10.{n}" for n in range(1, 5)]
PARALLEL = 64


async def _connect_all(
    host: str,
    port: int,
    context: ssl.SSLContext,
    credentials: Callable[[int], tuple[str, str, bytes]],
) -> list[LeanClient]:
    clients: list[LeanClient] = []
    gate = asyncio.Semaphore(PARALLEL)

    async def one(i: int) -> None:
        client_id, username, password = credentials(i)
        client = LeanClient()
        async with gate:
            await client.connect(
                host, port, context, client_id, username, password,
                source=SOURCES[i % len(SOURCES)],
            )  # fmt: skip
        clients.append(client)

    await asyncio.gather(*(one(i) for i in range(COUNT)))
    return clients


Credentials = Callable[[int], tuple[str, str, bytes]]


def _measure(
    pid: int, host: str, port: int, context: ssl.SSLContext, credentials: Credentials
) -> tuple[float, float]:
    async def run() -> tuple[float, float]:
        await asyncio.sleep(0.5)
        before = rss_kib(pid)
        started = time.perf_counter()
        clients = await _connect_all(host, port, context, credentials)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.0)
        after = rss_kib(pid)
        for client in clients:
            client.abort()
        await asyncio.sleep(0.2)
        return (after - before) / COUNT, elapsed

    return asyncio.run(run())


def main() -> None:
    raise_fd_limit()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "hub"
        data_dir.mkdir()
        keys = fill_hub(data_dir, COUNT)
        ids = sorted(keys)
        with hub_process(data_dir, HUB_HOST) as (info, pid):
            context = ssl.create_default_context(cafile=info["caCertificatePath"])

            def hub_credentials(i: int) -> tuple[str, str, bytes]:
                username, password = hub_password(info, ids[i], keys[ids[i]])
                return ids[i], username, password

            ours, took = _measure(pid, HUB_HOST, 8883, context, hub_credentials)
            print(f"   hub: {COUNT:,} TLS devices connected in {took:.1f} s, "
                  f"{ours:.1f} KiB of hub RSS each", flush=True)  # fmt: skip
        theirs: float | None = None
        if mosquitto_available():
            tls_dir = Path(tmp) / "mosquitto-tls"
            paths = certs.ensure_certificates(tls_dir, [MOSQUITTO_HOST])
            with mosquitto_process(Path(tmp) / "mosquitto", MOSQUITTO_HOST, 8883, tls_dir,
                                   persistence=False) as mpid:  # fmt: skip
                mcontext = ssl.create_default_context(cafile=str(paths.ca_cert))
                theirs, took = _measure(
                    mpid, MOSQUITTO_HOST, 8883, mcontext, lambda i: (ids[i], "", b"")
                )
            print(f"   mosquitto: {COUNT:,} TLS clients connected in {took:.1f} s, "
                  f"{theirs:.1f} KiB of RSS each")  # fmt: skip
    _results.record(_results.Row(
        measure=f"hub RSS per idle TLS device connection ({COUNT:,} connected)",
        value=ours, unit="KiB", anchor="mosquitto 2 (TLS)", anchor_value=theirs,
        goal="<= 25 KiB", met=ours <= 25,
        note="" if theirs is not None else "mosquitto missing: run `make bench` as root",
    ))  # fmt: skip
