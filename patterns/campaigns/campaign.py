"""`Campaign`: the controller loop that moves a campaign forward, one `tick` at a time.

A tick, run by any process at any time (`twinfleet campaign run ID` loops over it):

1. enqueue: devices the target selects that carry no tag of this campaign get `queued` with
   their group (snapshot campaigns do this once, at start; continuous ones on every tick);
2. evaluate: each `admitted` device's reported state says succeeded, failed or in progress; one
   in progress past the timeout has timed out; failed and timed-out devices are queued again
   while attempts remain (after a backoff), else they stay failed;
3. safety: the abort criteria and health gates are checked on the counts;
4. admit: from the first group not yet done, as many queued devices as the rate limiter allows
   are claimed (tag write with the twin's etag: a device claimed by another controller is
   skipped) and the pattern is applied to them;
5. finish: a snapshot campaign with nothing queued or in progress is completed.

Everything the tick knows it reads from the hub, so a controller can stop and another resume.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import queries
from patterns.campaigns import kinds, records, specs, windows
from twin_manager import HubError, PreconditionFailed, TwinManager

__all__ = ["FINAL", "Campaign", "CampaignStatus"]

log = logging.getLogger(__name__)

FINAL = ("completed", "aborted", "cancelled")
_IN_FLIGHT = ("queued", "admitted")


@dataclass
class CampaignStatus:
    """Counts per state, from one GROUP BY query, and the failure reasons most seen."""

    campaign_id: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.counts.get("succeeded", 0) + self.failed

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0) + self.counts.get("timedout", 0)


class Campaign:
    """One campaign on one hub.

    Args:
        fleet: the hub.
        record: the campaign's stored record (from `create` or `load`).
        clock: the time source (Unix seconds), injectable for tests.
    """

    def __init__(self, fleet: TwinManager, record: records.CampaignRecord,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.fleet = fleet
        self.record = record
        self.clock = clock

    @classmethod
    def create(cls, fleet: TwinManager, spec: specs.CampaignSpec,
               clock: Callable[[], float] = time.time) -> Campaign:  # fmt: skip
        """Validate the spec's queries locally, then store the campaign in the hub."""
        for condition in (spec.target, *(g.condition for g in spec.groups),
                          *(h.condition for h in spec.health_gates)):  # fmt: skip
            fleet.validate(f"SELECT * FROM devices WHERE {condition}")
        return cls(fleet, records.CampaignRecord.create(fleet, spec), clock)

    @classmethod
    def load(cls, fleet: TwinManager, campaign_id: str,
             clock: Callable[[], float] = time.time) -> Campaign:  # fmt: skip
        return cls(fleet, records.CampaignRecord.load(fleet, campaign_id), clock)

    @property
    def spec(self) -> specs.CampaignSpec:
        return self.record.spec

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def _tag(self) -> str:
        return f"tags.twinfleet.{self.id}"

    def _target(self) -> str:
        return f"({self.spec.target}) AND NOT IS_DEFINED(tags.{records.RECORD_TAG})"

    # -- status ----------------------------------------------------------------------------

    def status(self) -> CampaignStatus:
        """Counts per state (queued, admitted, succeeded, failed, timedout, cancelled)."""
        counts = {
            str(k): v
            for k, v in self.fleet.group_by(
                f"{self._tag}.state", f"IS_DEFINED({self._tag})"
            ).items()
            if k is not None
        }
        reasons = {
            str(k): v
            for k, v in self.fleet.group_by(
                f"{self._tag}.reason", f"{self._tag}.state IN ['failed', 'timedout']"
            ).items()
            if k
        }
        return CampaignStatus(self.id, self.record.status, counts, reasons,
                              list(self.record.state.get("log", [])))  # fmt: skip

    # -- control ---------------------------------------------------------------------------

    def _set_status(
        self, status: str, why: str, when: Callable[[str], bool] = lambda now: now not in FINAL
    ) -> bool:
        """Set the status if `when(current status)` holds on the stored record (which another
        process may have changed since this one read it); True when it was set."""
        now = self.clock()
        applied = False

        def change(state: dict[str, Any]) -> None:
            nonlocal applied
            applied = when(str(state.get("status", "created")))
            if applied:
                state["status"] = status
                state.setdefault("log", []).append(f"{records.iso(now)} {status}: {why}")

        self.record.update(self.fleet, change)
        if applied:
            log.info("campaign %s %s: %s", self.id, status, why)
        return applied

    def pause(self, why: str = "paused by the operator") -> None:
        self._set_status("paused", why)

    def resume(self) -> None:
        self._set_status("running", "resumed by the operator", lambda now: now == "paused")

    def cancel(self) -> None:
        """Stop admitting; queued devices are cancelled, in-flight ones finish on their own."""
        if self._set_status("cancelled", "cancelled by the operator"):
            self._cancel_queued("cancelled")

    def abort(self, why: str = "aborted by the operator") -> None:
        """Stop now: queued devices are cancelled and, when the spec asks for it, updated
        devices are rolled back (as when the abort criteria trip)."""
        if self.record.status not in FINAL:
            self._abort(why)

    def forget(self) -> int:
        """Remove a finished campaign: its record and every device's tag for it (tags are
        limited to 8 KB per twin, so long-lived fleets clear old campaigns). Returns how many
        device tags were removed.

        Raises:
            ValueError: the campaign has not finished.
        """
        if self.record.status not in FINAL and self.record.status != "created":
            raise ValueError(f"campaign {self.id} is {self.record.status}; cancel it first")
        removed = 0
        for twin in self.fleet.query_twins(f"IS_DEFINED({self._tag})", page_size=1000):
            self.fleet.update_tags(twin.device_id, {"twinfleet": {self.id: None}})
            removed += 1
        self.fleet.delete_device(records.record_device_id(self.id))
        return removed

    def _cancel_queued(self, reason: str) -> None:
        for twin in self.fleet.query_twins(f"{self._tag}.state = 'queued'", page_size=1000):
            self._write(twin.device_id, twin.etag, {"state": "cancelled", "reason": reason})

    def _write(self, device_id: str, etag: str | None, state: dict[str, Any]) -> bool:
        """Update this campaign's tag on one device; False when another writer got there first."""
        try:
            self.fleet.update_tags(device_id, {"twinfleet": {self.id: state}}, if_match=etag or "*")
        except PreconditionFailed:
            return False
        return True

    # -- the loop --------------------------------------------------------------------------

    def run(self, *, poll: float = 1.0, until: Callable[[], bool] | None = None,
            on_tick: Callable[[CampaignStatus], None] | None = None) -> CampaignStatus:  # fmt: skip
        """Tick until the campaign is final (or `until()` is true); returns the last status."""
        while True:
            status = self.tick()
            if on_tick is not None:
                on_tick(status)
            if status.status in FINAL or (until is not None and until()):
                return status
            time.sleep(poll)

    def tick(self) -> CampaignStatus:
        """One pass of the controller (see the module docstring)."""
        self.record = records.CampaignRecord.load(self.fleet, self.id)
        now = self.clock()
        status = self.record.status
        if status in FINAL or status == "paused":
            return self.status()
        if self.spec.start_at is not None and now < self.spec.start_at:
            return self.status()
        if status == "created":
            self.record.update(self.fleet, lambda state: state.setdefault("startedAt", now))
            self._enqueue(now)
            if not self._set_status("running", "started", lambda now: now == "created"):
                return self.status()  # paused or cancelled before it started
        elif self.spec.mode == "continuous":
            self._enqueue(now)
        self._evaluate(now)
        current = self.status()
        if self._safety(current, now):
            return self.status()
        window = self.spec.window
        open_now = window is None or windows.in_window(window.cron, window.duration_minutes, now)
        if open_now and (self.spec.end_at is None or now < self.spec.end_at):
            self._admit(current, now)
        elif not open_now:
            # no tokens pile up while the window is shut
            self.record.update(self.fleet, lambda state: state.update(lastTick=now))
        current = self.status()
        in_flight = sum(current.counts.get(s, 0) for s in _IN_FLIGHT)
        ended = self.spec.end_at is not None and now >= self.spec.end_at
        if in_flight == 0 and (self.spec.mode == "snapshot" or ended):
            self._cancel_queued("campaign ended")
            self._set_status("completed", f"{current.counts.get('succeeded', 0)} succeeded, "
                                          f"{current.failed} failed")  # fmt: skip
        return self.status()

    def _group_of(self, twin: dict[str, Any]) -> str:
        for group in self.spec.groups:
            if queries.parse_condition(group.condition).matches(twin):
                return group.name
        return "rest" if self.spec.groups else "all"

    def _enqueue(self, now: float) -> None:
        text = f"SELECT * FROM devices WHERE {self._target()} AND NOT IS_DEFINED({self._tag})"
        added = 0
        for row in self.fleet.query(text, page_size=1000):
            state = {"state": "queued", "attempt": 0, "group": self._group_of(row), "reason": None}
            etag = row.get("etag")
            for _ in range(5):  # the device may be reporting at this very moment
                if self._write(row["deviceId"], etag, state):
                    added += 1
                    break
                twin = self.fleet.get_twin(row["deviceId"])
                if self.id in (twin.tags.get("twinfleet") or {}):
                    break  # another controller queued it
                etag = twin.etag
        if added:
            self.record.log(now, f"queued {added} devices")

    def _evaluate(self, now: float) -> None:
        for twin in self.fleet.query_twins(f"{self._tag}.state = 'admitted'", page_size=1000):
            mine = twin.tags["twinfleet"][self.id]
            attempt = int(mine.get("attempt", 1))
            step = int(mine.get("step") or 0)
            steps = self.spec.all_steps
            result, reason = kinds.outcome(steps[step], twin.reported, self._step_id(step),
                                           attempt, str(mine.get("admittedAt", "")))  # fmt: skip
            if result == kinds.Outcome.IN_PROGRESS:
                started = float(mine.get("admittedEpoch", now))
                if now - started < self.spec.timeout_seconds:
                    continue
                result, reason = kinds.Outcome.FAILED, "timed out"
            if result == kinds.Outcome.SUCCEEDED:
                if step + 1 < len(steps):
                    self._start_step(twin.device_id, twin.etag, step + 1, 1, now)
                else:
                    self._write(twin.device_id, twin.etag, {"state": "succeeded", "reason": None})
                continue
            if len(steps) > 1:
                reason = f"step {step + 1}: {reason}"
            self._fail_or_retry(twin.device_id, twin.etag, attempt, reason, now)

    def _step_id(self, step: int) -> str:
        """What a step's reported `campaignId` carries (the campaign id, then the step)."""
        return self.id if step == 0 else f"{self.id}.{step}"

    def _start_step(self, device_id: str, etag: str | None, step: int, attempt: int,
                    now: float) -> bool:  # fmt: skip
        """Claim the device for `step` (etag-guarded) and apply that step's pattern."""
        claim = {"state": "admitted", "step": step, "attempt": attempt,
                 "admittedAt": records.iso(now), "admittedEpoch": now, "reason": None}  # fmt: skip
        if not self._write(device_id, etag, claim):
            return False
        try:
            result, reason = kinds.apply(self.fleet, self.spec.all_steps[step], self._step_id(step),
                                         device_id, attempt)  # fmt: skip
        except HubError as exc:
            result, reason = kinds.Outcome.FAILED, f"{exc.error_code or exc.status}"
        if result == kinds.Outcome.SUCCEEDED:
            if step + 1 < len(self.spec.all_steps):
                return self._start_step(device_id, None, step + 1, 1, now)
            self._write(device_id, None, {"state": "succeeded"})
        elif result == kinds.Outcome.FAILED:
            self._fail_or_retry(device_id, None, attempt, reason, now)
        return True

    def rerun(self) -> None:
        """Run again: failed, timed-out and cancelled devices are queued at the step where they
        stopped; succeeded devices are skipped."""
        now = self.clock()
        again = 0
        condition = f"{self._tag}.state IN ['failed', 'timedout', 'cancelled']"
        for twin in self.fleet.query_twins(condition, page_size=1000):
            again += self._write(twin.device_id, twin.etag,
                                 {"state": "queued", "attempt": 0, "notBefore": None})  # fmt: skip
        self.record.log(now, f"re-run: {again} devices queued again")
        self.record.update(self.fleet, lambda state: state.update(status="running"))

    def _fail_or_retry(self, device_id: str, etag: str | None, attempt: int, reason: str,
                       now: float) -> None:  # fmt: skip
        retries = self.spec.retries
        if attempt < retries.max_attempts:
            delay = retries.backoff_seconds * 2 ** (attempt - 1)
            self._write(
                device_id, etag, {"state": "queued", "reason": reason, "notBefore": now + delay}
            )
            self.record.log(
                now, f"{device_id}: attempt {attempt} failed ({reason}); retry in {delay:g} s"
            )
        else:
            state = "timedout" if reason == "timed out" else "failed"
            self._write(device_id, etag, {"state": state, "reason": reason})
            self.record.log(now, f"{device_id}: {state} ({reason})")

    def _safety(self, current: CampaignStatus, now: float) -> bool:
        """Check abort criteria and health gates; True when the campaign stopped."""
        abort = self.spec.abort
        if abort is not None and current.finished >= abort.min_finished:
            percent = 100 * current.failed / current.finished
            if percent >= abort.failure_percent:
                self._abort(f"{percent:.0f}% of {current.finished} finished devices failed "
                            f"(threshold {abort.failure_percent:g}%)")  # fmt: skip
                return True
        updated = current.counts.get("succeeded", 0)
        for gate in self.spec.health_gates:
            if updated < gate.min_devices:
                continue
            bad = self.fleet.count(f"{self._tag}.state = 'succeeded' AND ({gate.condition})")
            if bad / updated > gate.max_fraction:
                why = f"health gate {gate.condition!r}: {bad} of {updated} updated devices"
                if gate.action == "abort":
                    self._abort(why)
                else:
                    self._set_status("paused", why)
                return True
        return False

    def _abort(self, why: str) -> None:
        self._cancel_queued("campaign aborted")
        pattern = self.spec.pattern
        if (
            self.spec.abort
            and self.spec.abort.rollback
            and isinstance(pattern, specs.FirmwareUpdate)
        ):
            previous = pattern.rollback_to
            if previous is not None:
                for twin in self.fleet.query_twins(f"{self._tag}.state IN ['admitted', 'failed']"):
                    kinds.apply(self.fleet, previous, f"{self.id}-rollback", twin.device_id, 1)
        self._set_status("aborted", why)

    def _current_group(self, current: CampaignStatus) -> str | None:
        """The first group with devices still to go; None when a finished group is unhealthy."""
        names = [g.name for g in self.spec.groups] + ["rest"] if self.spec.groups else ["all"]
        for name in names:
            counts = dict(
                self.fleet.group_by(f"{self._tag}.state", f"{self._tag}.group = '{name}'")
            )
            total = sum(counts.values())
            if not total:
                continue
            group = next((g for g in self.spec.groups if g.name == name), None)
            finished = (
                counts.get("succeeded", 0) + counts.get("failed", 0) + counts.get("timedout", 0)
            )
            if group is not None and finished:
                errors = (counts.get("failed", 0) + counts.get("timedout", 0)) / finished
                if errors >= group.error_threshold and errors > 0:
                    self._set_status(
                        "paused", f"group {name}: {errors:.0%} of finished devices failed"
                    )
                    return None
            if counts.get("queued", 0) or counts.get("admitted", 0):
                return name
            if group is not None and counts.get("succeeded", 0) / total < group.success_threshold:
                self._set_status("paused", f"group {name} finished below its success threshold")
                return None
        return None

    def _admit(self, current: CampaignStatus, now: float) -> None:
        group = self._current_group(current)
        if group is None or self.record.status != "running":
            return
        state = self.record.state
        last = state.get("lastTick")
        rate = self.spec.rollout.rate(current.counts.get("succeeded", 0))
        tokens = float(state.get("tokens", 1.0))
        if last is not None:
            tokens = min(tokens + rate * (now - float(last)) / 60, max(1.0, rate))
        allowed = int(tokens)
        admitted = 0
        if allowed:
            condition = f"{self._tag}.state = 'queued' AND {self._tag}.group = '{group}'"
            if self.spec.trigger == "on_connect":
                condition += " AND connectionState = 'Connected'"
            for twin in self.fleet.query_twins(condition, page_size=1000):
                if admitted >= allowed:
                    break
                mine = twin.tags["twinfleet"][self.id]
                if float(mine.get("notBefore") or 0) > now:
                    continue
                attempt = int(mine.get("attempt", 0)) + 1
                if self._start_step(twin.device_id, twin.etag, int(mine.get("step") or 0),
                                    attempt, now):  # fmt: skip
                    admitted += 1
        if admitted:
            self.record.log(now, f"admitted {admitted} from group {group} at {rate:g}/min")
        self.record.update(
            self.fleet, lambda state: state.update(tokens=tokens - admitted, lastTick=now)
        )
