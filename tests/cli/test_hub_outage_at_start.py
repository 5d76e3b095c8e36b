"""A controller or a simulated fleet started while its hub is down waits for the hub, as it
already does for an outage once running (found by the chaos soak, `make soak`: both exited 1 when
the hub was being restarted at the moment they started). The hub is stopped with its `hub.json`
left behind, as a killed hub leaves it, and started again on the same address and port."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local_hub import LocalHub
from twin_manager import TwinManager


def _wait_for(check: Callable[[], Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def _down(hub: LocalHub) -> str:
    """Stop the hub but leave its hub.json, as SIGKILL does; returns hub.json's text."""
    info = (hub.data_dir / "hub.json").read_text()
    hub.close()
    (hub.data_dir / "hub.json").write_text(info)
    return info


def test_campaign_run_waits_for_a_hub_that_is_down_when_it_starts(
    make_hub: Callable[..., LocalHub], tmp_path: Path
) -> None:
    hub = make_hub(tmp_path / "hub")
    port = hub.service_port
    created = subprocess.run(
        [sys.executable, "-m", "twinfleet", "campaign", "create", "reboot", "idle_1", "--target",
         "deviceId = 'nobody'", "--allow-empty", "--hub-dir", str(hub.data_dir)],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    _down(hub)
    output = tmp_path / "run.log"
    with output.open("w") as sink:
        run = subprocess.Popen(
            [sys.executable, "-m", "twinfleet", "campaign", "run", "idle_1", "--poll", "0.5",
             "--hub-dir", str(hub.data_dir)],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(lambda: "trying again" in output.read_text() or run.poll() is not None)
        assert run.poll() is None, output.read_text()
        make_hub(tmp_path / "hub", host=hub.host, service_port=port)
        assert run.wait(90) == 0, output.read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "completed" in output.read_text()


def test_fleet_simulate_waits_for_a_hub_that_is_down_when_it_starts(
    make_hub: Callable[..., LocalHub], tmp_path: Path
) -> None:
    hub = make_hub(tmp_path / "hub")
    port = hub.service_port
    _down(hub)
    output = tmp_path / "simulate.log"
    with output.open("w") as sink:
        simulate = subprocess.Popen(
            [sys.executable, "-m", "twinfleet", "fleet", "simulate", "--devices", "2",
             "--prefix", "late", "--state-root", str(tmp_path / "devices"),
             "--hub-dir", str(hub.data_dir)],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(lambda: "trying again" in output.read_text() or simulate.poll() is not None)
        assert simulate.poll() is None, output.read_text()
        again = make_hub(tmp_path / "hub", host=hub.host, service_port=port)
        with TwinManager.from_local_hub(again) as fleet:
            _wait_for(lambda: fleet.queries.count("connectionState = 'Connected'") == 2, timeout=90)
    finally:
        simulate.send_signal(signal.SIGINT)
        try:
            simulate.wait(30)
        except subprocess.TimeoutExpired:
            simulate.kill()
            simulate.wait()
