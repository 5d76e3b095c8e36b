"""`twinfleet hub serve` as a process: one log line per endpoint, clean stop on SIGINT, one-line
error when the address is taken."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from azure.iot.device import IoTHubDeviceClient

from local_hub import LocalHub, ports
from twin_manager import TwinManager


def test_serve_logs_each_endpoint_and_stops_on_sigint(hub_process: Any) -> None:
    info = hub_process.start()
    process = hub_process.process
    fleet = TwinManager.from_hub_dir(hub_process.data_dir)
    fleet.devices.create("on-at-stop")
    device = IoTHubDeviceClient.create_from_connection_string(
        fleet.devices.connection_string("on-at-stop"),
        server_verification_cert=Path(info["caCertificatePath"]).read_text(),
        connection_retry=False,
    )
    device.connect()  # a device still connected when the hub stops
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    device.shutdown()
    log = process.stderr.read().decode()
    assert "Traceback" not in log
    assert "CancelledError" not in log
    process.stderr.close()
    host, port = info["serviceEndpoint"]["host"], info["serviceEndpoint"]["port"]
    assert f"device endpoint (MQTT over TLS) listening on {host}:8883" in log
    assert f"service endpoint (HTTPS) listening on https://{host}:{port}" in log
    assert "hub twinfleet stopped" in log
    assert "SharedAccessKey" not in log
    assert not (hub_process.data_dir / "hub.json").exists()


def test_serve_on_a_taken_address_fails_in_one_line(hub: LocalHub, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twinfleet", "hub", "serve", "--data-dir", str(tmp_path / "x"),
         "--host", hub.host, "--service-port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot start the hub:")
    assert "Traceback" not in result.stderr


def test_serve_on_443_without_privilege_says_how_to_allow_it(tmp_path: Path, loopback: str) -> None:
    if ports.unprivileged_port_start() <= 443:
        pytest.skip("this machine lets anyone listen on port 443")
    command = [sys.executable, "-m", "twinfleet", "hub", "serve", "--data-dir",
               str(tmp_path / "hub"), "--host", loopback, "--service-port", "443"]  # fmt: skip
    if os.geteuid() == 0:  # as root, drop the one capability that allows it
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop CAP_NET_BIND_SERVICE")
        drop = "-net_bind_service"
        command = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    elif ports.can_listen(loopback, 443):
        pytest.skip("this interpreter holds CAP_NET_BIND_SERVICE")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: cannot start the hub: permission denied to listen on {loopback}:443"
    )
    assert f"setcap cap_net_bind_service=+ep {os.path.realpath(sys.executable)}" in last
    assert "sysctl net.ipv4.ip_unprivileged_port_start=443" in last
    assert not (tmp_path / "hub" / "hub.json").exists()


def test_the_permission_hint_is_only_for_a_refused_low_port() -> None:
    low = min(443, ports.unprivileged_port_start() - 1)
    refused = PermissionError(13, "Permission denied")
    hint = ports.permission_hint(refused, "127.0.0.1", low)
    if low > 0:
        assert hint is not None
        assert f"127.0.0.1:{low}" in hint
        assert "ip_unprivileged_port_start" in hint
    assert ports.permission_hint(refused, "127.0.0.1", 50000) is None
    assert ports.permission_hint(OSError(98, "Address in use"), "127.0.0.1", low) is None


def test_serve_with_a_tier_prints_it_and_enforces_it(tmp_path: Path, loopback: str) -> None:
    data_dir = tmp_path / "tiered"
    process = subprocess.Popen(
        [sys.executable, "-m", "twinfleet", "hub", "serve", "--data-dir", str(data_dir),
         "--host", loopback, "--service-port", "0", "--tier", "s3", "--units", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert line.startswith("tier S3, 2 units: 2000 queries/min, 500 twin updates/sec")
        deadline = time.monotonic() + 30
        while not (data_dir / "hub.json").exists():
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert TwinManager.from_hub_dir(data_dir).queries.count() == 0
        hub_info = json.loads((data_dir / "hub.json").read_text())
        assert (hub_info["tier"], hub_info["units"]) == ("S3", 2)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
        assert process.stdout is not None
        process.stdout.close()


@pytest.mark.parametrize(("tier", "units"), [("B1", "1"), ("S3", "11")])
def test_serve_refuses_an_unknown_tier_or_unit_count(tmp_path: Path, tier: str, units: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "twinfleet", "hub", "serve", "--data-dir", str(tmp_path / "h"),
         "--tier", tier, "--units", units],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert finished.returncode == 2
    assert finished.stderr.startswith("error: ")
    assert tier in finished.stderr
    assert not (tmp_path / "h").exists()
