"""Fixtures every test folder may use.

Nothing here is faked: tests get real loopback addresses and real temporary directories. Each test
that starts a hub gets its own loopback address (the device endpoint's port 8883 is fixed by the
SDK), so tests run in parallel under pytest-xdist, and beside other pytest runs, without meeting.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Iterator

import pytest

_MQTT_PORT = 8883
_counter = itertools.count()


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


@pytest.fixture
def loopback() -> str:
    """A loopback address of this test's own, with the MQTT port free on it."""
    return allocate_loopback()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves non-daemon threads running behind it."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test left threads running: {still}"
