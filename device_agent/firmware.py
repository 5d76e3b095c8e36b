"""The firmware update state machine: download, verify, apply, reboot, then commit or roll back.

Power can fail at any instant, so the machine's state and its inputs (the target image, the
digest of what was downloaded) are written to disk atomically *before* the side effect of each
state runs. After a restart the agent re-enters the saved state and runs its side effect again;
each one is safe to repeat:

- downloading: resumes the partial file with an HTTP Range request;
- verifying: compares the saved digest with the expected one (no second download);
- applying: writes the image to the inactive slot again;
- rebooting: the reboot happened (or power failed, which is a reboot): if the new version is
  running, the update is committed; if the old one is, the trial boot failed: rolled back;
- committing: confirms the boot again.

What the device reports is always read from the platform (`currentFwVersion` is what runs), so
the back end never sees a version the device is not running.

Before anything is downloaded, a request is checked against what the device will accept: with a
trust store, the image must carry a signature (over its version, SHA-256 and security floor) by
a trusted key; the version may not be below the device's recorded security floor, `force` or
not; and a downgrade needs `force`. The floor starts at the agent's `security_floor` and is
raised, once a signed image commits, to the floor that image was signed with; it is persisted
with the machine's state, so it only ever rises.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from transitions import Machine

from device_agent import downloading, errors
from device_agent.persistence import StateFile
from device_agent.platforms import Platform, RebootRequested
from device_agent.signatures import TrustStore, UntrustedImage
from patterns.contracts import FirmwareDesired, FirmwareReported, FirmwareStatus, times

__all__ = ["ACTIVE_STATES", "STATES", "FirmwareUpdater", "version_key"]

log = logging.getLogger(__name__)

STATES = ["current", "downloading", "verifying", "applying", "rebooting", "committing", "error",
          "rolledback"]  # fmt: skip
ACTIVE_STATES = ("downloading", "verifying", "applying", "rebooting", "committing")
_TRANSITIONS = [
    {"trigger": "start", "source": ["current", "error", "rolledback"], "dest": "downloading"},
    {"trigger": "downloaded", "source": "downloading", "dest": "verifying"},
    {"trigger": "verified", "source": "verifying", "dest": "applying"},
    {"trigger": "applied", "source": "applying", "dest": "rebooting"},
    {"trigger": "booted_new", "source": "rebooting", "dest": "committing"},
    {"trigger": "committed", "source": "committing", "dest": "current"},
    {"trigger": "booted_old", "source": ["rebooting", "committing"], "dest": "rolledback"},
    {"trigger": "fail", "source": ["current", *ACTIVE_STATES], "dest": "error"},
]
Report = Callable[[dict[str, Any]], None]


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """A sort key for versions such as `1.10.2` or `2.0.0-rc1` (numbers compare as numbers)."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+]", version))


def _highest(*versions: str | None) -> str | None:
    known = [v for v in versions if v]
    return max(known, key=version_key) if known else None


class FirmwareUpdater:
    """Drives one device's firmware toward its desired section. Blocking: run it in a thread.

    Args:
        platform: the device.
        state_dir: where the machine's state and the downloaded image live.
        report: called with each reported-properties patch (the `firmware` section).
        max_image_size: the largest image accepted, in bytes.
        ca_file: a CA file trusted for https image URLs.
        trust_store: keys whose signatures the device requires on images; None accepts
            unsigned images (the checksum alone).
        security_floor: the lowest version the device may run; the recorded floor only rises.
    """

    state: str
    # Triggers the transitions Machine adds to the model.
    start: Callable[[], bool]
    downloaded: Callable[[], bool]
    verified: Callable[[], bool]
    applied: Callable[[], bool]
    booted_new: Callable[[], bool]
    booted_old: Callable[[], bool]
    committed: Callable[[], bool]
    fail: Callable[[], bool]

    def __init__(
        self, platform: Platform, state_dir: Path, report: Report, *,
        max_image_size: int = 512 * 1024 * 1024, ca_file: str | None = None,
        trust_store: TrustStore | None = None, security_floor: str | None = None,
    ) -> None:  # fmt: skip
        self.platform = platform
        self.state_dir = state_dir
        self.report_patch = report
        self.max_image_size = max_image_size
        self.ca_file = ca_file
        self.file = StateFile(state_dir / "firmware.json")
        saved = self.file.load()
        self.target: dict[str, Any] | None = saved.get("target")
        self.digest: str | None = saved.get("digest")
        self.attempted: dict[str, Any] | None = saved.get("attempted")
        self.substatus: str = saved.get("substatus", "")
        self.started: str | None = saved.get("started")
        self.ended: str | None = saved.get("ended")
        self.trust_store = trust_store
        self.floor: str | None = _highest(saved.get("floor"), security_floor)
        self.machine = Machine(
            model=self, states=STATES, transitions=cast(Any, _TRANSITIONS),
            initial=saved.get("state", "current"), auto_transitions=False,
            after_state_change="_persist",
        )  # fmt: skip

    @property
    def image(self) -> Path:
        return self.state_dir / "image.bin"

    # -- persistence and reporting ---------------------------------------------------------

    def _persist(self) -> None:
        target = (self.target or {}).get("fwVersion", "")
        log.info(
            "firmware %s %s%s", self.state, target, f": {self.substatus}" * bool(self.substatus)
        )
        self.file.save(
            {
                "state": self.state, "target": self.target, "digest": self.digest,
                "attempted": self.attempted, "substatus": self.substatus,
                "started": self.started, "ended": self.ended, "floor": self.floor,
            }
        )  # fmt: skip
        self._report()

    def _report(self) -> None:
        # Committing is the tail of the reboot: the new image runs but is not yet confirmed.
        status = "rebooting" if self.state == "committing" else self.state
        pending = self.target["fwVersion"] if self.target and self.state in ACTIVE_STATES else ""
        reported = FirmwareReported(
            current_version=self.platform.current_version(),
            pending_version=pending,
            status=FirmwareStatus(status),
            substatus=self.substatus,
            last_start_time=self.started,
            last_end_time=self.ended,
            campaign_id=(self.target or {}).get("campaignId"),
        )
        self.report_patch({"firmware": reported.wire()})

    def report_current(self) -> None:
        """Report the current state as it is (on connect, or after a desired no-op)."""
        self._report()

    # -- deciding --------------------------------------------------------------------------

    def _identity(self, desired: FirmwareDesired) -> dict[str, Any]:
        return desired.model_dump(by_alias=True, mode="json")

    def reconcile(self, desired: FirmwareDesired | None) -> None:
        """Carry an update in progress to its end, or start the one `desired` asks for."""
        if self.state in ACTIVE_STATES:
            self._drive()
            return
        if desired is None:
            self.report_current()
            return
        identity = self._identity(desired)
        running = self.platform.current_version()
        if desired.version == running or identity == self.attempted:
            self.report_current()  # nothing to do, or this exact request already ended
            return
        self.target = identity
        self.attempted = identity
        self.digest = None
        self.started, self.ended = times.iso_now(), None
        refusal = self._refusal(desired, running)
        if refusal:
            log.warning("firmware %s refused: %s", desired.version, refusal)
            self.substatus = refusal
            self.ended = times.iso_now()
            self.fail()
            return
        self.substatus = "0%"
        self.image.unlink(missing_ok=True)
        self.start()
        self._drive()

    def _refusal(self, desired: FirmwareDesired, running: str) -> str:
        """Why the device will not install `desired` (the substatus to report), or "" if it may."""
        if self.trust_store is not None:
            try:
                self.trust_store.check(desired.statement(), desired.signature)
            except UntrustedImage as exc:
                return f"refused: {exc}"
        if self.floor is not None and version_key(desired.version) < version_key(self.floor):
            return (
                f"refused: version {desired.version} is below this device's security floor "
                f"{self.floor}; force cannot override it"
            )
        if version_key(desired.version) < version_key(running) and not desired.force:
            return f"refused downgrade from {running} to {desired.version}; set force to allow it"
        return ""

    # -- doing -----------------------------------------------------------------------------

    def _drive(self) -> None:
        while self.state in ACTIVE_STATES:
            try:
                getattr(self, f"_do_{self.state}")()
            except errors.PermanentError as exc:
                self._end_with_error(str(exc))
            except errors.TemporaryError as exc:
                self.substatus = f"{exc} (will retry)"
                self._report()
                raise

    def _end_with_error(self, message: str) -> None:
        log.warning("firmware update failed: %s", message)
        self.substatus = message
        self.ended = times.iso_now()
        if self.state == "applying":
            self.platform.rollback()
        self.image.unlink(missing_ok=True)
        self.fail()

    def _do_downloading(self) -> None:
        assert self.target is not None
        size = self.target.get("fwPackageSize")
        if size is not None and size > self.max_image_size:
            raise errors.PermanentError(
                f"image is {size} bytes, over the limit of {self.max_image_size} bytes"
            )

        def progress(done: int, total: int | None) -> None:
            self.substatus = f"{done * 100 // total}%" if total else f"{done} bytes"
            self._report()

        self.digest = downloading.download(
            self.target["fwPackageURI"], self.image, max_size=self.max_image_size,
            ca_file=self.ca_file, progress=progress,
        )  # fmt: skip
        self.substatus = "100%"
        self.downloaded()

    def _do_verifying(self) -> None:
        assert self.target is not None
        expected = str(self.target["fwPackageCheckValue"]).lower()
        if self.digest != expected:
            raise errors.PermanentError(
                f"checksum mismatch: expected sha256 {expected}, image has {self.digest}"
            )
        self.substatus = "verified"
        self.verified()

    def _do_applying(self) -> None:
        assert self.target is not None
        if self.platform.current_version() == self.target["fwVersion"]:
            # Power failed after the install: the device already booted the new image.
            self.applied()
            return
        try:
            self.platform.install(self.image, self.target["fwVersion"])
        except (OSError, RuntimeError) as exc:
            raise errors.PermanentError(f"installing the image failed: {exc}") from exc
        self.substatus = "rebooting into the new image"
        self.applied()
        self.platform.reboot()
        raise RebootRequested  # a platform whose reboot returns: stop until it happens

    def _do_rebooting(self) -> None:
        assert self.target is not None
        running = self.platform.current_version()
        if running == self.target["fwVersion"]:
            self.substatus = "committing"
            self.booted_new()
        else:
            failure = getattr(self.platform, "last_boot_failure", lambda: None)()
            self.substatus = f"rolled back to {running}: {failure or 'the new image did not boot'}"
            self.ended = times.iso_now()
            self.image.unlink(missing_ok=True)
            self.booted_old()

    def _do_committing(self) -> None:
        assert self.target is not None
        running = self.platform.current_version()
        if running != self.target["fwVersion"]:
            # A reboot came before the confirmation: the bootloader went back to the old image.
            self.substatus = f"rolled back to {running}: the new image was not confirmed in time"
            self.ended = times.iso_now()
            self.image.unlink(missing_ok=True)
            self.booted_old()
            return
        self.platform.confirm_boot()
        if self.trust_store is not None:  # only a signed floor may raise it
            self.floor = _highest(self.floor, self.target.get("fwSecurityFloor"))
        self.substatus = ""
        self.ended = times.iso_now()
        self.image.unlink(missing_ok=True)
        self.committed()
