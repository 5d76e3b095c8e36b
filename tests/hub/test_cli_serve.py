"""`twinfleet hub serve` as a process: one log line per endpoint, clean stop on SIGINT, one-line
error when the address is taken."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from local_hub import LocalHub


def test_serve_logs_each_endpoint_and_stops_on_sigint(hub_process: Any) -> None:
    info = hub_process.start()
    process = hub_process.process
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    log = process.stderr.read().decode()
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
