"""twin_manager against the local hub: latency of get_twin, update_desired and invoke, and
query paging throughput over 10,000 twins."""

from __future__ import annotations

import concurrent.futures
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from azure.iot.device import IoTHubDeviceClient, MethodResponse

from local_hub import LocalHub
from twin_manager import TwinManager

HOST = "127.0.0.202"
TWINS = 10_000
SAMPLES = 300


def _latency(label: str, call: Callable[[int], object]) -> None:
    times = []
    for i in range(SAMPLES):
        started = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    print(
        f"   {label}: median {statistics.median(times):.2f} ms, p99 {p99:.2f} ms ({SAMPLES} calls)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalHub(Path(tmp) / "hub", host=HOST) as hub:
        fleet = TwinManager.from_local_hub(hub)
        fleet.devices.create("bench-device")
        client = IoTHubDeviceClient.create_from_connection_string(
            fleet.devices.connection_string("bench-device"),
            server_verification_cert=hub.ca_certificate,
        )
        client.connect()
        client.on_method_request_received = lambda request: client.send_method_response(
            MethodResponse.create_from_method_request(request, 200, {"ok": True})
        )
        try:
            _latency("get_twin", lambda i: fleet.twins.get("bench-device"))
            _latency(
                "update_desired", lambda i: fleet.twins.update_desired("bench-device", {"n": i})
            )
            _latency(
                "invoke", lambda i: fleet.methods.invoke("bench-device", "ping", i, timeout=10)
            )
        finally:
            client.shutdown()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: fleet.devices.create(f"q-{i:05d}"), range(TWINS - 1)))
        started = time.perf_counter()
        count = sum(1 for _ in fleet.queries.run("SELECT * FROM devices", page_size=1000))
        elapsed = time.perf_counter() - started
        print(
            f"   query paging: {count:,} twins in {elapsed:.2f} s = {count / elapsed:,.0f} twins/s "
            "(pages of 1,000)"
        )
