"""The soak's child processes: the hub, groups of simulated agents and a campaign controller, each
a real `twinfleet` command whose output goes to a log file of its own.

Every process is started by `Child.start` and ended by `Child.kill` (SIGKILL: the fault the soak
injects) or `Child.stop` (SIGTERM, then SIGKILL), always by its own pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["Child", "agent_group", "controller", "hub"]


class Child:
    """One command, started again after each kill.

    Args:
        name: what the soak calls it (`hub`, `agents-3`, `controller`).
        argv: the command.
        log_path: where its stdout and stderr go (appended, across restarts).
    """

    def __init__(
        self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.env = env or {}
        self.argv = argv
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0
        self.started_at = 0.0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def start(self) -> None:
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log.write(f"\n=== start {self.starts} at {time.time():.3f}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )  # fmt: skip
        self.starts += 1
        self.started_at = time.monotonic()

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer does."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close_log()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process is not None:
            self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _twinfleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "twinfleet", *args]


def hub(data_dir: Path, host: str, service_port: int, logs: Path) -> Child:
    """`twinfleet hub serve` on `host` (MQTT on 8883, HTTPS on `service_port`)."""
    return Child(
        "hub",
        _twinfleet(
            "hub",
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            host,
            "--service-port",
            str(service_port),
        ),
        logs / "hub.log",
    )


def agent_group(
    index: int, proxy_dir: Path, devices: int, state_root: Path, logs: Path, https_proxy: str
) -> Child:
    """`twinfleet fleet simulate` for `devices` devices named `soak-gNN-NNNN`, reaching the hub
    through the proxies (`proxy_dir` names the MQTT one as the devices' gateway; HTTPS, the
    image downloads included, goes through `https_proxy`)."""
    return Child(
        f"agents-{index:02d}",
        _twinfleet(
            "fleet",
            "simulate",
            "--hub-dir",
            str(proxy_dir),
            "--devices",
            str(devices),
            "--prefix",
            group_prefix(index),
            "--state-root",
            str(state_root),
        ),
        logs / f"agents-{index:02d}.log",
        {"HTTPS_PROXY": https_proxy},
    )


def group_prefix(index: int) -> str:
    return f"soak-g{index:02d}"


def controller(campaign_id: str, proxy_dir: Path, logs: Path, https_proxy: str) -> Child:
    """`twinfleet campaign run` for one campaign, through the HTTPS proxy."""
    return Child(
        "controller",
        _twinfleet("campaign", "run", campaign_id, "--poll", "1", "--hub-dir", str(proxy_dir)),
        logs / f"controller-{campaign_id}.log",
        {"HTTPS_PROXY": https_proxy},
    )


def proxy_hub_dir(hub_info: dict[str, Any], hub_host: str, proxy_host: str, target: Path) -> None:
    """Write `target/hub.json`: the running hub as devices see it through the proxy (their
    gateway is the proxy's address; the service's HostName stays the hub's, which its SAS
    tokens must name, and HTTPS reaches it through the proxy as `HTTPS_PROXY`)."""
    info = dict(hub_info)
    info["gatewayHostName"] = proxy_host
    info["deviceEndpoint"] = {**info["deviceEndpoint"], "host": proxy_host}
    target.mkdir(parents=True, exist_ok=True)
    path = target / "hub.json"
    path.write_text(json.dumps(info, indent=2))
    path.chmod(0o600)
