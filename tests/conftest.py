"""Fixtures every test folder may use.

Nothing here is faked: tests get real loopback addresses and real temporary directories. Each test
that starts a hub gets its own loopback address (the device endpoint's port 8883 is fixed by the
SDK), so tests run in parallel under pytest-xdist, and beside other pytest runs, without meeting.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import hypothesis
import pytest
import requests
from azure.iot.hub import IoTHubRegistryManager
from hypothesis import HealthCheck, settings

from local_hub import LocalHub, ports, testing, tokens
from local_hub.server import HTTPS_PORT

# Hypothesis's health checks time input generation; on a loaded 2-core machine (CI, or parallel
# workers) that timing says nothing about the code under test, so it must not fail a run. The
# properties themselves are unchanged; each test still sets its own example count.
settings.register_profile(
    "twinfleet",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("twinfleet")

_MQTT_PORT = 8883
# azure-iot-device runs every client's pipeline and callbacks on two process-wide executors that
# it creates on first use and never shuts down (common/pipeline/pipeline_thread.py).
_SDK_SINGLETONS = frozenset({"pipeline", "callback"})
_counter = itertools.count()

# Hypothesis times examples by the wall clock; on a 2-core machine shared with other test runs
# that clock says nothing about the code, so its deadline and its too-slow health check made
# property tests fail now and then. The examples and their number stay the same.
hypothesis.settings.register_profile(
    "twinfleet",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("twinfleet")


class DeviceFactory(NamedTuple):
    """A device registered for a test."""

    device_id: str
    key: str
    connection_string: str


def _free_on(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def allocate_loopback() -> str:
    """A 127.x.y.z address on which port 8883 is free, distinct per process and per call."""
    second = 16 + os.getpid() % 224
    for _ in range(2000):
        n = next(_counter)
        address = f"127.{second}.{(n // 250) % 250}.{n % 250 + 2}"
        if _free_on(address, _MQTT_PORT):
            return address
    raise RuntimeError("no free loopback address with port 8883 available")


def service_port_on(address: str) -> int:
    """IoT Hub's own HTTPS port, 443, when this process may listen on it at `address` (root, or
    a granted capability: every language's service SDK then reaches the hub); else any free port.
    """
    return HTTPS_PORT if ports.can_listen(address, HTTPS_PORT) else 0


@pytest.fixture
def loopback() -> str:
    """A loopback address of this test's own, with the MQTT port free on it."""
    return allocate_loopback()


@pytest.fixture
def faults() -> testing.Faults:
    """The fault switch of `hub`: `faults.inject(503, 2)` fails its next two service requests."""
    return testing.Faults()


@pytest.fixture
def hub(tmp_path: Path, loopback: str, faults: testing.Faults) -> Iterator[LocalHub]:
    """A running local hub on this test's own loopback address and data directory, with the
    `faults` switch installed (production hubs have none)."""
    with LocalHub(
        tmp_path / "hub",
        host=loopback,
        service_port=service_port_on(loopback),
        service_middlewares=[faults.middleware],
    ) as running:
        yield running


@pytest.fixture
def make_hub(tmp_path: Path) -> Iterator[Callable[..., LocalHub]]:
    """Start more hubs: `make_hub(data_dir=None, *, host=None, **LocalHub options)`.

    Each call starts a LocalHub (a new data directory under tmp_path and a new loopback address
    unless given; reuse both to restart a closed hub as the same hub). All are closed at teardown.
    """
    started: list[LocalHub] = []

    def make(data_dir: Path | None = None, *, host: str | None = None, **options: Any) -> LocalHub:
        directory = data_dir or tmp_path / f"hub-{len(started)}"
        address = host or allocate_loopback()
        options.setdefault("service_port", service_port_on(address))
        running = LocalHub(directory, host=address, **options).start()
        started.append(running)
        return running

    yield make
    for running in reversed(started):
        running.close()


@pytest.fixture
def registry_manager(hub: LocalHub) -> Iterator[Any]:
    """The service SDK's registry manager for `hub`, trusting its CA for this client only."""
    manager = IoTHubRegistryManager.from_connection_string(hub.service_connection_string)
    manager.protocol.config.connection.verify = hub.ca_certificate_path
    yield manager
    manager.protocol.close()  # its HTTPS session, or its sockets are left to the collector


@pytest.fixture
def make_device(hub: LocalHub, registry_manager: Any) -> Callable[..., DeviceFactory]:
    """Register a device through the service SDK; returns its id, key and connection string."""

    def make(device_id: str, status: str = "enabled") -> DeviceFactory:
        key = base64.b64encode(os.urandom(32)).decode()
        registry_manager.create_device_with_sas(device_id, key, None, status)
        return DeviceFactory(device_id, key, hub.device_connection_string(device_id, key))

    return make


class HubProcess:
    """`python -m twinfleet hub serve` in a child process."""

    def __init__(self, data_dir: Path, host: str) -> None:
        self.data_dir = data_dir
        self.host = host
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> dict[str, Any]:
        info_path = self.data_dir / "hub.json"
        info_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "twinfleet", "hub", "serve", "--data-dir", str(self.data_dir),
             "--host", self.host, "--service-port", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not info_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"hub did not start: {self.process.stderr}")
            time.sleep(0.05)
        info: dict[str, Any] = json.loads(info_path.read_text())
        return info

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        assert self.process.stderr is not None
        self.process.stderr.close()

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=15)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


@pytest.fixture
def hub_process(tmp_path: Path, loopback: str) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub", loopback)
    yield process
    if process.process is None:
        return
    if process.process.poll() is None:
        process.kill()
    # A test that killed the hub itself leaves its stderr pipe open; closing it here keeps the
    # garbage collector from reporting the unclosed file in whatever test runs next.
    if process.process.stderr is not None and not process.process.stderr.closed:
        process.process.stderr.close()


def _upload(hub: LocalHub, name: str, data: bytes) -> dict[str, Any]:
    """Upload an artifact with the owner key; returns the desired firmware section for it."""
    parts = dict(p.split("=", 1) for p in hub.service_connection_string.split(";"))
    token = tokens.make_sas_token(
        parts["HostName"], base64.b64decode(parts["SharedAccessKey"]), int(time.time()) + 600
    )
    response = requests.put(
        f"https://{hub.host}:{hub.service_port}/artifacts/{name}",
        data=data,
        headers={"Authorization": token + "&skn=iothubowner"},
        verify=hub.ca_certificate_path,
        timeout=30,
    )
    response.raise_for_status()
    return {
        "fwPackageURI": hub.artifact_url(name),
        "fwPackageCheckValue": hashlib.sha256(data).hexdigest(),
        "fwPackageSize": len(data),
    }


@pytest.fixture
def upload(hub: LocalHub) -> Callable[[str, bytes], dict[str, Any]]:
    """Upload an image to the hub; returns the desired firmware fields pointing at it."""
    return lambda name, data: _upload(hub, name, data)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves non-daemon threads running behind it."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.daemon and t.name not in _SDK_SINGLETONS
    ]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test left threads running: {still}"
