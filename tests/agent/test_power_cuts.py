"""Power cuts at 50 random points of a firmware update: each run ends with the new version
committed (or the old one running), and no report ever claims what the device does not run.

The update is the real state machine with its real persistence, downloading over HTTPS from the
local hub's artifact endpoint (resuming with Range) onto a SimulatedPlatform. A "power cut" is an
exception raised at a chosen point (before or after a state save, an install, a confirm, or in
the middle of a download); the device then boots and a fresh updater carries on from disk.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from device_agent import FirmwareUpdater, RebootRequested, SimulatedPlatform, persistence
from local_hub import LocalHub
from patterns.contracts import FirmwareDesired

IMAGE = bytes(random.Random(1).randbytes(1_500_000))


class PowerCut(BaseException):
    """The lights go out (a BaseException, so no handler in the agent can swallow it)."""


class Fuse:
    """Counts cut points and blows at the chosen one."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.count = 0

    def point(self) -> None:
        self.count += 1
        if self.count == self.at:
            raise PowerCut


@pytest.fixture
def desired(hub: LocalHub, upload: Any) -> FirmwareDesired:
    fields = upload("fw-power.bin", IMAGE)
    return FirmwareDesired.model_validate({"fwVersion": "2.0.0", **fields})


def _wire(fuse: Fuse, monkeypatch: pytest.MonkeyPatch) -> None:
    save = persistence.StateFile.save

    def cut_save(self: persistence.StateFile, data: dict[str, Any]) -> None:
        fuse.point()
        save(self, data)
        fuse.point()

    monkeypatch.setattr(persistence.StateFile, "save", cut_save)
    for name in ("install", "confirm_boot"):
        original = getattr(SimulatedPlatform, name)

        def wrapped(self: SimulatedPlatform, *args: Any, _original: Any = original) -> None:
            fuse.point()
            _original(self, *args)
            fuse.point()

        monkeypatch.setattr(SimulatedPlatform, name, wrapped)


@pytest.mark.parametrize("seed", range(50))
def test_power_cut_at_a_random_point(
    seed: int,
    desired: FirmwareDesired,
    hub: LocalHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fuse = Fuse(at=random.Random(seed).randint(1, 24))
    _wire(fuse, monkeypatch)
    platform = SimulatedPlatform(tmp_path / "platform")
    reports: list[dict[str, Any]] = []

    def report(patch: dict[str, Any]) -> None:
        firmware = patch["firmware"]
        assert firmware["currentFwVersion"] == platform.current_version(), "a lie"
        if firmware["fwUpdateStatus"] == "current":
            assert firmware["pendingFwVersion"] == ""
        reports.append(firmware)
        if firmware["fwUpdateStatus"] == "downloading" and firmware["fwUpdateSubstatus"] == "50%":
            fuse.point()  # a cut in the middle of the download

    cuts = 0
    for _ in range(30):
        updater = FirmwareUpdater(
            platform, tmp_path / "agent", report, ca_file=hub.ca_certificate_path
        )
        try:
            updater.reconcile(desired)
        except (PowerCut, RebootRequested) as exc:
            cuts += isinstance(exc, PowerCut)
            platform.boot()
            continue
        if updater.state not in ("downloading", "verifying", "applying", "rebooting", "committing"):
            break
    assert cuts <= 1
    final = reports[-1]
    if updater.state == "current":
        assert platform.current_version() == "2.0.0"
        assert final["currentFwVersion"] == "2.0.0"
    else:
        assert updater.state in ("error", "rolledback")
        assert platform.current_version() == "1.0.0"
    assert final["fwUpdateStatus"] == updater.state
