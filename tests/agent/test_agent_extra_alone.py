"""DESIGN.md: `pip install twinfleet[agent]` alone in a fresh venv runs the agent. The back end,
the hub and the CLI's dependencies are absent there; the agent connects to a hub run by this
test and reports."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path
from typing import Any

import pytest

from local_hub import LocalHub
from twin_manager import TwinManager

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import asyncio, importlib.util, sys
from pathlib import Path
for absent in ("aiohttp", "typer", "rich", "cryptography"):
    assert importlib.util.find_spec(absent) is None, absent
assert importlib.util.find_spec("azure.iot.hub") is None
from device_agent import run_simulated_device
connection_string, ca_file, root = sys.argv[1:4]
async def main() -> None:
    task = asyncio.create_task(run_simulated_device(
        connection_string, Path(root), ca_cert=Path(ca_file).read_text()))
    await asyncio.sleep(8)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
asyncio.run(main())
"""


# pip builds and installs the package in a fresh venv: about 90 s alone on two cores, and well
# past the suite's 120 s default when other tests share the CPU. The subprocess has its own
# 600 s bound, so the test gets the same.
@pytest.mark.timeout(600)
def test_the_agent_extra_alone_runs_the_agent(
    hub: LocalHub, tmp_path: Path, eventually: Any
) -> None:
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{ROOT}[agent]"],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    fleet = TwinManager.from_local_hub(hub)
    fleet.create_device("minimal")
    process = subprocess.Popen(
        [str(python), "-c", SCRIPT, fleet.device_connection_string("minimal"),
         hub.ca_certificate_path, str(tmp_path / "device")],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        eventually(lambda: fleet.get_twin("minimal").reported.get("firmware"), timeout=60)
    finally:
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()[-2000:]
