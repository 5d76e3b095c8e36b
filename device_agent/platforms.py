"""The hardware behind the agent: a small protocol, a simulated A/B device and a command-driven
one for real Linux devices.

An A/B update installs the new image into the inactive slot and marks it for a trial boot; the
next boot runs it; `confirm_boot` makes it permanent. A trial boot that fails falls back to the
old slot, so a bad image never bricks the device.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Protocol, runtime_checkable

from device_agent.persistence import write_json

__all__ = ["FAIL_FIRST_BOOT", "CommandPlatform", "Platform", "RebootRequested", "SimulatedPlatform"]

log = logging.getLogger(__name__)

FAIL_FIRST_BOOT = b"TWINFLEET-FAIL-FIRST-BOOT"


class RebootRequested(Exception):
    """Raised by a simulated reboot: the agent must stop; its host boots and starts it again."""


@runtime_checkable
class Platform(Protocol):
    """What the agent needs of the device."""

    def current_version(self) -> str:
        """The firmware version running now."""
        ...

    def install(self, image: Path, version: str) -> None:
        """Write `image` to the inactive slot and mark it for a trial boot."""
        ...

    def reboot(self) -> None:
        """Restart the device (does not return on real hardware)."""
        ...

    def confirm_boot(self) -> None:
        """Make the running (trial) slot permanent."""
        ...

    def rollback(self) -> None:
        """Give up a pending trial: the next boot runs the old slot."""
        ...

    def factory_reset(self) -> None:
        """Erase user data and configuration."""
        ...


class SimulatedPlatform:
    """An A/B device as files in a directory.

    `slots/a` and `slots/b` hold images, `boot.json` says which slot is active, which (if any) is
    on trial, and the version of each. `boot()` is what the device's bootloader does at power-on;
    an image that starts with `FAIL_FIRST_BOOT` fails its trial boot and the old slot runs again.
    """

    def __init__(
        self, root: Path, *, initial_version: str = "1.0.0", fail_first_boots: int = 0
    ) -> None:
        self.root = root
        self._state_path = root / "boot.json"
        if not self._state_path.exists():
            (root / "slots").mkdir(parents=True, exist_ok=True)
            self._save(
                {"active": "a", "trial": None, "versions": {"a": initial_version}, "boots": 0,
                 "lastBootFailed": None, "failBoots": fail_first_boots}
            )  # fmt: skip
        (root / "data").mkdir(parents=True, exist_ok=True)

    def _load(self) -> dict[str, object]:
        return dict(json.loads(self._state_path.read_text()))

    def _save(self, state: dict[str, object]) -> None:
        write_json(self._state_path, state)

    @staticmethod
    def _other(slot: object) -> str:
        return "b" if slot == "a" else "a"

    def current_version(self) -> str:
        state = self._load()
        versions = state["versions"]
        assert isinstance(versions, dict)
        return str(versions[state["active"]])

    def install(self, image: Path, version: str) -> None:
        state = self._load()
        slot = self._other(state["active"])
        shutil.copyfile(image, self.root / "slots" / slot)
        versions = state["versions"]
        assert isinstance(versions, dict)
        versions[slot] = version
        state["pendingSlot"] = slot
        self._save(state)

    def reboot(self) -> None:
        log.info("simulated reboot")
        raise RebootRequested

    def boot(self) -> None:
        """Power-on: run a pending trial slot, or fall back when its image fails to boot."""
        state = self._load()
        state["boots"] = int(str(state["boots"])) + 1
        pending = state.pop("pendingSlot", None)
        if pending is not None:
            image = (self.root / "slots" / str(pending)).read_bytes()[: len(FAIL_FIRST_BOOT)]
            flaky = int(str(state.get("failBoots", 0)))
            if image == FAIL_FIRST_BOOT or flaky > 0:
                state["failBoots"] = max(0, flaky - 1)
                state["lastBootFailed"] = f"image in slot {pending} failed its first boot"
            else:
                state["trial"] = state["active"]
                state["active"] = pending
                state["lastBootFailed"] = None
        elif state.get("trial") is not None:
            # A trial slot that was never confirmed: the watchdog falls back.
            state["active"], state["trial"] = state["trial"], None
            state["lastBootFailed"] = "the new image was not confirmed before the next boot"
        self._save(state)

    def last_boot_failure(self) -> str | None:
        reason = self._load().get("lastBootFailed")
        return None if reason is None else str(reason)

    def confirm_boot(self) -> None:
        state = self._load()
        state["trial"] = None
        self._save(state)

    def rollback(self) -> None:
        state = self._load()
        state.pop("pendingSlot", None)
        if state.get("trial") is not None:
            state["active"], state["trial"] = state["trial"], None
        self._save(state)

    def factory_reset(self) -> None:
        shutil.rmtree(self.root / "data", ignore_errors=True)
        (self.root / "data").mkdir()


class CommandPlatform:
    """A real Linux device whose actions are shell commands (e.g. RAUC, SWUpdate, Mender calls).

    `install` gets the image path and version as `{image}` and `{version}` in its command.
    """

    def __init__(
        self, *, version: str, install: str, reboot: str, confirm: str, rollback: str,
        factory_reset: str, timeout: float = 600,
    ) -> None:  # fmt: skip
        self._commands = {
            "version": version, "install": install, "reboot": reboot, "confirm": confirm,
            "rollback": rollback, "factory_reset": factory_reset,
        }  # fmt: skip
        self._timeout = timeout

    def _run(self, name: str, **values: str) -> str:
        command = self._commands[name].format(**{k: shlex.quote(v) for k, v in values.items()})
        result = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=self._timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{name} command failed ({result.returncode}): {result.stderr[-500:]}"
            )
        return result.stdout.strip()

    def current_version(self) -> str:
        return self._run("version")

    def install(self, image: Path, version: str) -> None:
        self._run("install", image=str(image), version=version)

    def reboot(self) -> None:
        self._run("reboot")

    def confirm_boot(self) -> None:
        self._run("confirm")

    def rollback(self) -> None:
        self._run("rollback")

    def factory_reset(self) -> None:
        self._run("factory_reset")
