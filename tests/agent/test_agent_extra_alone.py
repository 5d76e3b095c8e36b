"""DESIGN.md: `pip install twinfleet[agent]` alone in a fresh venv runs the agent. The back end,
the hub and the CLI's dependencies are absent there; the installed `twinfleet-agent` command, given
a settings file, connects to a hub run by this test, loads a user's handler, applies a
configuration and a firmware update through a (simulated) reboot, and reports each."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tomllib
import venv
from pathlib import Path
from typing import Any

import pytest

from twin_manager import TwinManager

ROOT = Path(__file__).resolve().parents[2]
ABSENT = ("aiohttp", "typer", "click", "rich", "cryptography", "azure.iot.hub")
CHECK = f"""
import importlib.util
present = [name for name in {ABSENT!r} if importlib.util.find_spec(name) is not None]
assert not present, present
"""
HANDLER = """
def install(agent):
    @agent.section("leds")
    def leds(desired):
        return {"color": desired["color"], "lit": True}
"""


def _wheelhouse(cache: pytest.Cache) -> Path:
    """Wheels of the build backend and of the [agent] extra's dependencies, built once into
    pytest's cache (keyed by pyproject's requirements), so each run installs offline."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [*project["build-system"]["requires"],
              *project["project"]["optional-dependencies"]["agent"]]  # fmt: skip
    key = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]
    folder = cache.mkdir(f"agent-wheelhouse-{key}")
    if not (folder / "complete").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
             "--wheel-dir", str(folder), *wanted],
            check=True, timeout=600, capture_output=True,
        )  # fmt: skip
        (folder / "complete").write_text("\n".join(wanted))
    return folder


# pip builds and installs the package in a fresh venv (offline, from the wheelhouse): tens of
# seconds when other tests share the two cores; the subprocess has its own bound.
@pytest.mark.timeout(600)
def test_the_agent_extra_alone_runs_the_agent_command(
    fleet: TwinManager, agent_settings: Any, upload: Any, tmp_path: Path, eventually: Any,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False)  # as lean as a device's: this pip installs into it
    bin_dir = environment / "bin"
    wheelhouse = _wheelhouse(request.config.cache)  # type: ignore[arg-type]
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "--quiet",
         "--disable-pip-version-check", "--no-index", "--find-links", str(wheelhouse),
         f"{ROOT}[agent]"],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    subprocess.run([str(bin_dir / "python"), "-c", CHECK], check=True, timeout=60)
    # The back-end command is installed too (scripts are not per extra): it says what it needs.
    refused = subprocess.run([str(bin_dir / "twinfleet")], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "twinfleet-agent --config" in refused.stderr
    assert "Traceback" not in refused.stderr

    unit = subprocess.run([str(bin_dir / "twinfleet-agent"), "--systemd-unit"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"ExecStart={bin_dir / 'twinfleet-agent'} --config /etc/twinfleet/agent.toml" in unit

    handlers = tmp_path / "handlers"
    handlers.mkdir()
    (handlers / "fleet_leds.py").write_text(HANDLER)
    config = agent_settings("minimal", handlers=("fleet_leds:install",))
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        agent = subprocess.Popen(
            [str(bin_dir / "twinfleet-agent"), "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=out,
            env={**os.environ, "PYTHONPATH": str(handlers)},
        )  # fmt: skip

    def reported() -> dict[str, Any]:
        return fleet.twins.get("minimal").reported

    try:
        eventually(lambda: reported().get("firmware", {}).get("currentFwVersion") == "1.0.0")
        fleet.twins.update_desired(
            "minimal",
            {
                "firmware": {"fwVersion": "1.1.0", **upload("minimal.bin", b"image" * 4000)},
                "configuration": {"version": 2, "interval": 30},
                "leds": {"color": "green"},
            },
        )
        eventually(
            lambda: (
                reported().get("firmware", {}).get("currentFwVersion") == "1.1.0"
                and reported()["firmware"].get("fwUpdateStatus") == "current"
            ),
            timeout=60,
        )
        configuration = eventually(
            lambda: (c := reported().get("configuration", {})).get("status") == "applied" and c
        )
        assert configuration["version"] == 2
        assert configuration["settings"] == {"interval": 30}
        eventually(lambda: reported().get("leds") == {"color": "green", "lit": True})
        assert agent.poll() is None  # the reboot re-executed the same process
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text[-2000:]
    assert "simulated reboot: starting the agent again" in text
    assert (config.parent / "device.key").read_text().strip() not in text
