"""The soak's own writes, whose acknowledgements the "no acknowledged write lost" invariant holds
the hub to: a counter in the tags of probe devices (REST, through the proxy), and a counter in one
probe device's reported properties (MQTT through the proxy, with the device SDK).

Each writer is sequential: write `n` is acknowledged or abandoned before `n + 1` starts, so the
hub must hold at least the last acknowledged value.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from azure.iot.device import IoTHubDeviceClient

from benchmarks.soak import invariants
from twin_manager import HubError, TwinManager

__all__ = ["REPORTED_KEY", "ReportedProbe", "write_tags"]

log = logging.getLogger(__name__)

REPORTED_KEY = "reported:soakSeq"


async def write_tags(
    via: TwinManager, devices: list[str], ledger: invariants.Ledger, stop: asyncio.Event
) -> None:
    """Write `tags.soakProbe.seq = n` (n = 1, 2, ...) round the probe devices until `stop`."""
    n = 0
    while not stop.is_set():
        for device in devices:
            n += 1
            try:
                await asyncio.to_thread(via.twins.update_tags, device, {"soakProbe": {"seq": n}})
            except (HubError, OSError) as exc:
                log.debug("probe write %d to %s not acknowledged: %s", n, device, exc)
            else:
                ledger.acknowledge(f"tags:{device}", n)
            await asyncio.sleep(0.2)


class ReportedProbe:
    """A device SDK client in a thread, reporting `soakSeq = n` and recording each ack."""

    def __init__(self, connection_string: str, ca_pem: str, ledger: invariants.Ledger) -> None:
        self._client = IoTHubDeviceClient.create_from_connection_string(
            connection_string, server_verification_cert=ca_pem, keep_alive=10
        )
        self._ledger = ledger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-reported-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                self._client.patch_twin_reported_properties({"soakSeq": n})
            except Exception as exc:  # the SDK's errors share no root; any failure is no ack
                log.debug("reported probe %d not acknowledged: %s", n, exc)
                self._stop.wait(1.0)
                continue
            self._ledger.acknowledge(REPORTED_KEY, n)
            self._stop.wait(0.3)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        closing = threading.Thread(target=self._client.shutdown, daemon=True)
        closing.start()
        closing.join(30)
