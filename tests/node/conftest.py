"""Microsoft's Node.js IoT SDKs from npm (`azure-iot-device` + `azure-iot-device-mqtt`,
`azure-iothub`, pinned in package-lock.json and installed by `make test` with `npm ci`) against
a real LocalHub on IoT Hub's own port 443, over real TLS: nothing is faked.

Each scenario is a small Node script in `scenarios/`, one `node` process per scenario group. It
takes its arguments as JSON in an environment variable, trusts the hub's CA through
`NODE_EXTRA_CA_CERTS`, prints one JSON line per fact, and ends within its own deadline;
pytest bounds it again with a timeout and asserts on the facts and on the hub's state as the
Python SDKs see it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.iot.hub import IoTHubRegistryManager

from local_hub import LocalHub, ports
from local_hub.server import HTTPS_PORT

_HERE = Path(__file__).parent
_SCENARIOS = _HERE / "scenarios"
_NODE_MODULES = _HERE / "node_modules"


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` executable, with the pinned SDKs installed beside these tests."""
    executable = shutil.which("node")
    if executable is None:
        pytest.skip("Node.js is not installed")
    if not (_NODE_MODULES / "azure-iothub").is_dir():
        pytest.fail(
            "the Node.js SDKs are not installed: run `make test` (or `npm ci` in tests/node)"
        )
    return executable


@pytest.fixture
def node_hub(tmp_path: Path, loopback: str) -> Iterator[LocalHub]:
    """A hub on port 443 of this test's own loopback address: the Node.js service SDK always
    dials 443 (it takes HostName as a bare host name)."""
    if not ports.can_listen(loopback, HTTPS_PORT):
        pytest.skip("this process may not listen on port 443 (see `twinfleet hub serve` for how)")
    with LocalHub(tmp_path / "hub", host=loopback, service_port=HTTPS_PORT) as running:
        yield running


class Scenario:
    """One run of a scenario script: its process, and the facts it printed."""

    def __init__(self, node: str, hub: LocalHub, name: str, args: dict[str, Any]) -> None:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "NODE_EXTRA_CA_CERTS": hub.ca_certificate_path,
            "TWINFLEET_ARGS": json.dumps(args),
        }
        self.process = subprocess.Popen(
            [node, str(_SCENARIOS / f"{name}.js")],
            cwd=_HERE, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.facts: list[dict[str, Any]] = []

    def next_fact(self) -> dict[str, Any]:
        """The next fact the script prints (blocking; the script's own deadline bounds it)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the scenario ended early: {self.finish(expect_ok=False)}")
        fact: dict[str, Any] = json.loads(line)
        self.facts.append(fact)
        return fact

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self, *, timeout: float = 60, expect_ok: bool = True) -> str:
        """Wait for the script to end; returns its stderr. Fails unless it exited 0."""
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        self.facts.extend(json.loads(line) for line in out.splitlines() if line.strip())
        if expect_ok:
            assert self.process.returncode == 0, f"node exited {self.process.returncode}: {err}"
        return err

    def by_step(self) -> dict[str, dict[str, Any]]:
        return {fact["step"]: fact for fact in self.facts}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture
def scenario(node: str, node_hub: LocalHub) -> Iterator[Any]:
    """Start a scenario script: `scenario(name, **args)`; every process ends with the test."""
    started: list[Scenario] = []

    def start(name: str, **args: Any) -> Scenario:
        args.setdefault("service", node_hub.service_connection_string)
        started.append(Scenario(node, node_hub, name, args))
        return started[-1]

    yield start
    for running in started:
        running.close()


@pytest.fixture
def python_service(node_hub: LocalHub) -> Iterator[Any]:
    """The Python service SDK's registry manager for `node_hub` (to check what Node did)."""
    manager = IoTHubRegistryManager.from_connection_string(node_hub.service_connection_string)
    manager.protocol.config.connection.verify = node_hub.ca_certificate_path
    yield manager
    del manager
