"""Signed firmware end to end through the command line, as an operator releases it: `twinfleet
firmware keygen` and `firmware sign`, then `campaign create firmware --image --signature
--security-floor` and `campaign run`, all child processes, against an agent whose trust store
holds the release key. The image signed with a key the device does not trust is refused (the
campaign fails with the agent's substatus as its reason); the image signed with the release key
installs and raises the device's security floor; a later, properly signed image below that floor
is refused too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from local_hub import LocalHub
from patterns.campaigns import Campaign
from twin_manager import TwinManager


def _twinfleet(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "twinfleet", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _release(
    hub: LocalHub, tmp_path: Path, campaign_id: str, key: Path, version: str, floor: str | None
) -> subprocess.CompletedProcess[str]:
    """Sign an image and roll it out to the device; returns `campaign run`'s outcome."""
    image = tmp_path / f"fw-{version}.bin"
    image.write_bytes(f"firmware {version} ".encode() * 2000)
    floor_options = ["--security-floor", floor] if floor else []
    signed = _twinfleet("firmware", "sign", str(image), "--key", str(key), "--version", version,
                        *floor_options)  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    created = _twinfleet(
        "campaign", "create", "firmware", campaign_id, "--version", version, "--image", str(image),
        "--signature", signed.stdout.strip(), *floor_options, "--target", "deviceId = 'signed-cli'",
        "--rate", "600", "--timeout", "60", "--hub-dir", str(hub.data_dir),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return _twinfleet("campaign", "run", campaign_id, "--poll", "0.3", "--hub-dir",
                      str(hub.data_dir))  # fmt: skip


def test_signed_firmware_campaigns_from_the_command_line(
    hub: LocalHub, fleet: TwinManager, sim_device: Any, tmp_path: Path, eventually: Any
) -> None:
    keys = tmp_path / "keys"
    for name in ("release", "rogue"):
        made = _twinfleet("firmware", "keygen", name, "--dir", str(keys))
        assert made.returncode == 0, made.stderr
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "release.pem").write_bytes((keys / "release.pem").read_bytes())
    device = sim_device("signed-cli", trust_store=trust)

    def firmware() -> dict[str, Any]:
        return dict(fleet.twins.get("signed-cli").reported.get("firmware") or {})

    eventually(lambda: firmware().get("currentFwVersion") == "1.0.0")

    rogue = _release(hub, tmp_path, "fw_rogue", keys / "rogue.key", "2.0.0", "2.0.0")
    assert rogue.returncode == 4, rogue.stdout + rogue.stderr  # completed with a failed device
    reported = firmware()
    assert reported["currentFwVersion"] == "1.0.0"
    assert reported["fwUpdateStatus"] == "error"
    assert reported["fwUpdateSubstatus"].startswith("refused: ")
    assert "does not verify with any of the 1 trusted keys" in reported["fwUpdateSubstatus"]
    reasons = Campaign.load(fleet, "fw_rogue").status().reasons
    assert any("does not verify" in reason for reason in reasons), reasons

    good = _release(hub, tmp_path, "fw_good", keys / "release.key", "2.0.0", "2.0.0")
    assert good.returncode == 0, good.stdout + good.stderr
    assert firmware()["currentFwVersion"] == "2.0.0"

    below = _release(hub, tmp_path, "fw_below", keys / "release.key", "1.9.0", None)
    assert below.returncode == 4, below.stdout + below.stderr
    substatus = firmware()["fwUpdateSubstatus"]
    assert "below this device's security floor 2.0.0" in substatus
    assert firmware()["currentFwVersion"] == "2.0.0"
    device.stop()
