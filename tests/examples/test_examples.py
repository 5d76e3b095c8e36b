"""Every script under `examples/` runs to the end against a fresh local hub, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from local_hub import LocalHub

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("[0-9][0-9]-*/*.py"))

# What each example must print: proof that it did what it says, not merely that it exited 0.
EXPECTED = {
    "01-connect": ['"telemetryInterval": 30', "'region': 'eu-west'", "ready: True"],
    "02-query": [
        "eu-west: ['example-sensor-1', 'example-sensor-3', 'example-sensor-5']",
        "by region: {'eu-west': 3, 'us-east': 3}",
        "Expected an expression",
        "write the string as 'eu-west'",
    ],
    "03-campaign": [
        "campaign example_settings_v2: created",
        "campaign example_settings_v2: completed, {'succeeded': 4}",
        "example-gateway-0 (canary): succeeded",
        "example-gateway-3 (rest): succeeded",
        "failed: []",
        "reported: applied",
        "completed: 4 succeeded, 0 failed",
    ],
    "04-custom-pattern": [
        "patterns: firmware, configuration, reboot, factoryReset, diagnostics, retire, "
        "keyRotation, sampling",
        "campaign example_sampling_5s: completed, {'failed': 1, 'succeeded': 2}",
        "example-probe-2 failed: sampling: this sensor samples at most every 10 s",
        "'periodSeconds': 5, 'status': 'applied', 'campaignId': 'example_sampling_5s:1'",
    ],
    "05-device-agent-handler": [
        # Each desired value is applied once (the speaker change does not re-apply brightness).
        "device: brightness set to 70\nback end: reported display {'brightness': 70, "
        "'status': 'on'}\ndevice: brightness set to 30\nback end: brightness now 30\n"
        "device: blinking 3 times\nback end: blink answered 200 {'blinked': 3}\n"
        "back end: unhandled sections ['speaker']\nagent: stopped",
    ],
    "06-job": ["completed, 3 succeeded", "example-meter-2: completed", "'periodSeconds': 10"],
}


def test_every_example_has_expectations() -> None:
    assert {script.parent.name for script in SCRIPTS} == set(EXPECTED)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.parent.name)
def test_example_runs(script: Path, hub: LocalHub) -> None:
    result = subprocess.run(
        [sys.executable, str(script), str(hub.data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for expected in EXPECTED[script.parent.name]:
        assert expected in result.stdout, result.stdout
    assert "SharedAccessKey" not in result.stdout + result.stderr
