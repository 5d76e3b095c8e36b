"""`twinfleet demo`, the project's main job, run as a user runs it: a real process with a real
hub, agents and campaigns, on a small fleet so it stays quick."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_demo_converges_cleans_up_and_fits_80_columns(tmp_path: Path, loopback: str) -> None:
    env = {**os.environ, "COLUMNS": "80", "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "twinfleet", "demo", "--devices", "8", "--host",
         loopback],
        capture_output=True, text=True, timeout=240, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Fleet converged: 8 devices" in out
    assert "Campaign 2 stopped itself" in out
    assert all(len(line) <= 80 for line in out.splitlines()), max(out.splitlines(), key=len)
    assert "completed" in out  # a campaign status is never cut to "compl…"
    assert "aborted" in out
    # one GROUP BY table pairs each version with its update status (never a blank column)
    rows = [line.split("│")[1:4] for line in out.splitlines() if line.startswith("│ 2.0.0")]
    assert rows, out
    assert all(status.strip() in ("current", "error") for _, status, _ in rows), rows
    assert "Traceback" not in result.stderr
    assert not list(Path(tmp_path).glob("twinfleet-demo-*")), "the demo's temporary folder stays"
