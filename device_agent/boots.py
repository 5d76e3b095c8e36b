"""Knowing whether a requested reboot happened, from the kernel's boot id.

On a real device the reboot command only asks for a reboot. If the agent starts again without
one (`systemctl restart`, a crash, the watchdog, a reboot command that did nothing), the firmware
state machine would find the old version running and report the update "rolledback", though
the new image was never tried. So before the reboot command runs, the agent records the boot id
(`/proc/sys/kernel/random/boot_id` by default: it changes at every boot); at start, a record
with the same boot id means the reboot is still owed, and the agent asks for it again instead
of reading the device's state.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

from device_agent.persistence import StateFile
from device_agent.platforms import Platform

__all__ = ["BootTracker", "RecordingPlatform", "command_boot_id"]

log = logging.getLogger(__name__)


def command_boot_id(command: str, timeout: float = 30) -> Callable[[], str]:
    """A boot-id reader running a shell command (its stripped output is the id)."""

    def read() -> str:
        result = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0 or not result.stdout.strip():
            raise RuntimeError(
                f"boot_id command failed ({result.returncode}): {result.stderr[-500:]}"
            )
        return result.stdout.strip()

    return read


class BootTracker:
    """The record of a requested reboot, kept in the agent's state folder."""

    def __init__(self, state_dir: Path, boot_id: Callable[[], str]) -> None:
        self._file = StateFile(state_dir / "reboot.json")
        self._boot_id = boot_id

    def record(self) -> None:
        """Note that a reboot is requested during this boot (call before asking for it)."""
        self._file.save({"bootId": self._boot_id()})

    def owed(self) -> bool:
        """Whether a reboot was requested during this very boot and has not happened yet.

        A record from an earlier boot is cleared: that reboot happened.
        """
        saved = self._file.load()
        if not saved:
            return False
        if saved.get("bootId") == self._boot_id():
            return True
        self._file.clear()
        return False


class RecordingPlatform:
    """A platform whose reboot is recorded (`BootTracker.record`) before it is asked for."""

    def __init__(self, platform: Platform, tracker: BootTracker) -> None:
        self._platform = platform
        self._tracker = tracker

    def current_version(self) -> str:
        return self._platform.current_version()

    def install(self, image: Path, version: str) -> None:
        self._platform.install(image, version)

    def reboot(self) -> None:
        self._tracker.record()
        self._platform.reboot()

    def confirm_boot(self) -> None:
        self._platform.confirm_boot()

    def rollback(self) -> None:
        self._platform.rollback()

    def factory_reset(self) -> None:
        self._platform.factory_reset()
