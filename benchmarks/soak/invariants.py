"""The invariants the soak checks while faults fly, and what each has seen.

Every check reads the truth directly (the hub's own address, not the proxy; the simulated
platforms' files on disk), so a fault on the way cannot hide a violation or invent one.

- acknowledged writes: the soak writes a counter into tags of probe devices (through the proxy,
  where cuts make outcomes ambiguous) and, over MQTT, into one probe device's reported
  properties; after every hub restart and every few seconds the stored value must be at least
  the last one acknowledged.
- firmware reported: a device's `currentFwVersion` is what its platform's active slot holds. A
  device reports after it boots, so a mismatch is a violation only when it outlasts a grace
  period in which nothing disturbed the device (no kill of its agent or the hub, no cut); at the
  end, with every agent settled, reported and disk must agree exactly.
- admitted once: a device's `(campaign, attempt)` has one admission time, and its attempt number
  never goes back.
- old or new image: when a campaign settles, each device of it runs the image it ran when the
  campaign started or the campaign's image; succeeded devices run the new one.
- campaign consistent: a settled campaign is final, with nothing queued or admitted, and its
  counts add up to its devices.
- no process dies by itself: the hub, an agent process or the controller exits only when the
  injector kills it (or, the controller, when its campaign is over); the supervisor starts it
  again either way, so one crash does not stop the soak.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ACKED",
    "ADMITTED_ONCE",
    "CONSISTENT",
    "NAMES",
    "OLD_OR_NEW",
    "REPORTED",
    "SURVIVED",
    "Invariant",
    "Ledger",
    "disk_version",
    "slot_versions",
]

ACKED = "no acknowledged write lost"
REPORTED = "no device reports a firmware version it is not running"
ADMITTED_ONCE = "no device admitted twice to one attempt"
OLD_OR_NEW = "every device ends on the old or the new image"
CONSISTENT = "every campaign ends consistent, counts equal to its devices"
SURVIVED = "no process dies without the injector's hand"
NAMES = (ACKED, REPORTED, ADMITTED_ONCE, OLD_OR_NEW, CONSISTENT, SURVIVED)

_KEPT = 8  # violations kept per invariant for the report


@dataclass
class Invariant:
    """One invariant: how often it was checked and the first violations seen."""

    name: str
    checks: int = 0
    violations: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return self.violations == 0 and self.checks > 0

    def check(self, ok: bool, why: str) -> None:
        self.checks += 1
        if not ok:
            self.violations += 1
            if len(self.examples) < _KEPT:
                self.examples.append(why)


class Ledger:
    """Every invariant, plus the per-device memory the continuous checks need."""

    def __init__(self) -> None:
        self.invariants = {name: Invariant(name) for name in NAMES}
        self.acked: dict[str, int] = {}  # probe key -> last acknowledged counter
        self.admissions: dict[tuple[str, str, int], str] = {}  # (campaign, device, attempt)
        self.attempts: dict[tuple[str, str], int] = {}  # (campaign, device) -> last attempt
        self.mismatch_since: dict[str, float] = {}
        self.disturbed_at: dict[str, float] = {}  # device -> last fault that touched it
        self.everyone_disturbed_at = 0.0

    def __getitem__(self, name: str) -> Invariant:
        return self.invariants[name]

    @property
    def held(self) -> bool:
        return all(inv.held for inv in self.invariants.values())

    # -- acknowledged writes ---------------------------------------------------------------

    def acknowledge(self, key: str, value: int) -> None:
        self.acked[key] = max(self.acked.get(key, 0), value)

    def check_acked(self, key: str, acked_before_read: int, stored: int | None) -> None:
        self[ACKED].check(
            stored is not None and stored >= acked_before_read,
            f"{key}: {acked_before_read} was acknowledged, the hub holds {stored}",
        )

    # -- reported firmware -----------------------------------------------------------------

    def disturb(self, devices: list[str] | None, now: float) -> None:
        """A fault touched these devices (None: all of them)."""
        if devices is None:
            self.everyone_disturbed_at = now
            return
        for device in devices:
            self.disturbed_at[device] = now

    def check_reported(
        self, device: str, reported: str | None, running: str | None, now: float, grace: float
    ) -> None:
        if reported == running:
            self.mismatch_since.pop(device, None)
            self[REPORTED].check(True, "")
            return
        since = self.mismatch_since.setdefault(device, now)
        quiet_since = max(since, self.disturbed_at.get(device, 0.0), self.everyone_disturbed_at)
        self[REPORTED].check(
            now - quiet_since < grace,
            f"{device} reports {reported} but runs {running} for {now - quiet_since:.0f} s "
            "undisturbed",
        )

    def check_reported_final(self, device: str, reported: str | None, running: str | None) -> None:
        self[REPORTED].check(
            reported == running, f"at the end {device} reports {reported} but runs {running}"
        )

    # -- admissions ------------------------------------------------------------------------

    def check_admission(
        self, campaign: str, device: str, attempt: int, admitted_at: str | None
    ) -> None:
        last = self.attempts.get((campaign, device), 0)
        self[ADMITTED_ONCE].check(
            attempt >= last, f"{campaign}/{device}: attempt went back from {last} to {attempt}"
        )
        self.attempts[(campaign, device)] = max(last, attempt)
        if attempt == 0 or admitted_at is None:
            return
        first = self.admissions.setdefault((campaign, device, attempt), admitted_at)
        self[ADMITTED_ONCE].check(
            first == admitted_at,
            f"{campaign}/{device}: attempt {attempt} admitted at {first} and again at "
            f"{admitted_at}",
        )


def _boot_state(state_root: Path, device: str) -> dict[str, Any] | None:
    path = state_root / device / "platform" / "boot.json"
    for _ in range(3):  # the platform replaces the file atomically; a read may race a rename
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            time.sleep(0.01)
            continue
        return state
    return None


def disk_version(state_root: Path, device: str) -> str | None:
    """The version in the active slot of a simulated device's platform (None: not yet made)."""
    state = _boot_state(state_root, device)
    return None if state is None else str(state["versions"][state["active"]])


def slot_versions(state_root: Path, device: str) -> set[str]:
    """Every version a simulated device's slots hold (the images it ever installed, last two)."""
    state = _boot_state(state_root, device)
    return set() if state is None else {str(v) for v in state["versions"].values()}
