"""A connection lost right after the hub accepted it (CONNACK) and before the agent subscribed:
the device SDK then raises from setting a receive handler (its subscription failed, and it does
not make it again on reconnecting), which used to end the agent, and with it every device of a
`fleet simulate` process (found by the chaos soak, `make soak`). The agent connects again and
subscribes again.

The drop is made by a TLS-aware loopback proxy between the agent and the hub (the device's
gateway): it forwards whole TLS records and, on the first connections, closes both sides right
after the hub's first application-data record, the CONNACK, reached the device."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from device_agent import DeviceAgent, SimulatedPlatform
from local_hub import LocalHub, certs
from tests.conftest import allocate_loopback
from twin_manager import TwinManager

_MQTT_PORT = 8883
_APPLICATION_DATA = 0x17


class ConnackCutter:
    """Forwards `listen:8883` to `target:8883`; cuts the first `cuts` connections after the
    server's first application-data TLS record."""

    def __init__(self, listen: str, target: str, cuts: int) -> None:
        self.listen, self.target, self.cuts = listen, target, cuts
        self.connections = 0
        self.cut = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="connack-cutter")

    def __enter__(self) -> ConnackCutter:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, self.listen, _MQTT_PORT), self._loop
        ).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for link in list(self._links):
                link.cancel()
            await asyncio.gather(*self._links, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._link(reader, writer))
        self._links.add(task)
        task.add_done_callback(self._links.discard)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut = self.connections <= self.cuts
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target, _MQTT_PORT)
        except OSError:
            writer.transport.abort()
            return
        upward = asyncio.create_task(self._pump(reader, up_writer, cut_after_data=False))
        try:
            await self._pump(up_reader, writer, cut_after_data=cut)
        finally:
            upward.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await upward
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, cut_after_data: bool
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, OSError):
            while True:
                header = await reader.readexactly(5)
                record = header + await reader.readexactly(int.from_bytes(header[3:5], "big"))
                writer.write(record)
                await writer.drain()
                if cut_after_data and header[0] == _APPLICATION_DATA:
                    self.cut += 1
                    return


@pytest.fixture
def gateway(make_hub: Callable[..., LocalHub], tmp_path: Path) -> tuple[LocalHub, str]:
    """A hub whose certificate also names a second loopback address, the proxy's."""
    hub_host, proxy_host = allocate_loopback(), allocate_loopback()
    certs.ensure_certificates(tmp_path / "hub" / "tls", [hub_host, proxy_host])
    return make_hub(tmp_path / "hub", host=hub_host), proxy_host


# paho-mqtt 1.6 leaks the loopback socketpair it wakes its loop with on every reconnect (as in
# tests/hub/mqtt/test_device_endpoint.py).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_agent_subscribes_again_after_a_drop_right_after_connack(
    gateway: tuple[LocalHub, str], tmp_path: Path, eventually: Any
) -> None:
    hub, proxy_host = gateway
    with TwinManager.from_local_hub(hub) as fleet, ConnackCutter(proxy_host, hub.host, 2) as cutter:
        fleet.devices.create("dropped")
        agent = DeviceAgent(
            fleet.devices.connection_string("dropped", gateway_host_name=proxy_host),
            SimulatedPlatform(tmp_path / "p"), tmp_path / "a", ca_cert=hub.ca_certificate,
        )  # fmt: skip

        @agent.section("probe")
        def probe(desired: Any) -> Any:
            return desired

        @agent.method("ping")
        def ping(payload: Any) -> tuple[int, Any]:
            return 200, {"pong": payload}

        loop = asyncio.new_event_loop()
        run = loop.create_task(agent.run())
        thread = threading.Thread(target=loop.run_until_complete, args=(run,))
        thread.start()
        try:
            eventually(lambda: cutter.cut >= 2, timeout=60, what="two connections cut")
            assert not run.done(), run.exception()  # the agent lived through both drops
            # the hub holds the call until the device listens for methods again
            result = fleet.methods.invoke("dropped", "ping", 1, timeout=10, connect_timeout=90)
            assert result.status == 200
            fleet.twins.update_desired("dropped", {"probe": {"n": 7}})
            eventually(
                lambda: fleet.twins.get("dropped").reported.get("probe") == {"n": 7},
                timeout=60,
                what="a desired patch applied",
            )
        finally:
            loop.call_soon_threadsafe(agent.stop)
            thread.join(30)
            loop.close()
