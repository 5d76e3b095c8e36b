"""`Campaign`: the controller loop that moves a campaign forward, one `tick` at a time.

A tick, run by any process at any time (`twinfleet campaign run ID` loops over it):

1. enqueue: devices the target selects that carry no tag of this campaign get `queued` with
   their group (snapshot campaigns do this once, at start; continuous ones on every tick);
2. evaluate: each `admitted` device's reported state says succeeded, failed or in progress; one
   in progress past the timeout has timed out; failed and timed-out devices are queued again
   while attempts remain (after a backoff), else they stay failed;
   (a paused campaign evaluates too; an aborted or cancelled one keeps following the devices
   it had admitted to their outcome, with no retry and no next step, so none stays `admitted`);
3. safety: the abort criteria and health gates are checked on the counts;
4. admit: from the first group not yet done, as many queued devices as the rate limiter allows
   are claimed (tag write with the twin's etag: a device claimed by another controller is
   skipped) and the pattern is applied to them (a pattern that only writes desired properties
   in the claim's own write; tags are written in bulk where the hub's quota allows, `writes`);
5. finish: a snapshot campaign with nothing queued or in progress is completed.

Everything the tick knows it reads from the hub, so a controller can stop and another resume.

What a tick reads is bounded by the devices in flight, never by the fleet: the counts per group
and state come from one GROUP BY query (`tallies`), which the tick then keeps up to date with
its own writes; `evaluate` reads only the admitted devices; `admit` reads one page of queued
devices that are due, no more than it may admit; and the record is read once and written once.
So a tick costs the same few queries on ten devices as on a hundred thousand, in one group or
in twenty (see `pacing` for what that means on an S1 hub). With a `budget` (set by
`pacing.run_paced`), the tick also waits for room before each twin write, and a write the hub
still refuses (429, through twin_manager's retries) ends the tick without failing the device:
a device whose claim was written but whose pattern was refused is released, not failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import queries
from patterns import api
from patterns.campaigns import _workers as workers
from patterns.campaigns import (
    budgets,
    limiting,
    records,
    safety,
    specs,
    tallies,
    targeting,
    windows,
    writes,
)
from patterns.campaigns.progress import (
    FINISHED,
    TAG,
    CampaignState,
    DeviceProgress,
    DeviceState,
)
from patterns.contracts import times
from twin_manager import (
    DeviceNotFound,
    HubError,
    HubUnavailable,
    Throttled,
    TwinManager,
    models,
)

__all__ = ["FINAL", "Campaign", "CampaignStatus"]

log = logging.getLogger(__name__)

FINAL = (CampaignState.COMPLETED, CampaignState.ABORTED, CampaignState.CANCELLED)


@dataclass
class CampaignStatus:
    """Counts per device state (and per group and state), from one GROUP BY query, and the
    failure reasons most seen."""

    campaign_id: str
    status: CampaignState
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    groups: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(self.counts.get(state, 0) for state in FINISHED)

    @property
    def failed(self) -> int:
        return self.counts.get(DeviceState.FAILED, 0) + self.counts.get(DeviceState.TIMEDOUT, 0)

    @property
    def settled(self) -> bool:
        """Final, and no device it admitted is still in flight: nothing left to follow."""
        return self.status in FINAL and not self.counts.get("admitted")


@dataclass(frozen=True)
class _Outcome:
    """A device's result of an attempt: the tag to write, and what to log of it."""

    write: writes.Write
    message: str = ""


class Campaign:
    """One campaign on one hub.

    Args:
        fleet: the hub.
        record: the campaign's stored record (from `create` or `load`).
        clock: the time source (Unix seconds), injectable for tests.

    Attributes:
        budget: when set, the tick waits for room in it before each twin write.
        interval: the seconds the controller means to leave between ticks.
    """

    def __init__(self, fleet: TwinManager, record: records.CampaignRecord,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.fleet = fleet
        self.record = record
        self.clock = clock
        self.interval = 1.0
        self.budget: budgets.Budget | None = None
        self._tally = tallies.Tally()
        self._writes = writes.Writes(
            fleet, record.spec.id, budget=lambda: self.budget, spend=self._spend,
            moved=lambda before, after: self._tally.move(before, after),
        )  # fmt: skip
        self._reasons: tuple[int, dict[str, int]] = (0, {})
        self._log_lock = threading.Lock()  # workers log failures side by side

    def _log(self, now: float, message: str) -> None:
        with self._log_lock:
            self.record.log(now, message)

    @classmethod
    def create(cls, fleet: TwinManager, spec: specs.CampaignSpec,
               clock: Callable[[], float] = time.time) -> Campaign:  # fmt: skip
        """Validate the spec's queries locally, then store the campaign in the hub.

        Raises:
            InvalidQuery: the target, a group's or a health gate's condition is not valid.
            Conflict: a campaign with this id exists.
        """
        for condition in (spec.target, *(g.condition for g in spec.groups),
                          *(h.condition for h in spec.health_gates)):  # fmt: skip
            fleet.queries.validate_condition(condition)
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
        return f"tags.{TAG}.{self.id}"

    def _in(self, *states: DeviceState) -> str:
        return f"{self._tag}.state IN [{', '.join(queries.quote(s) for s in states)}]"

    # -- status ----------------------------------------------------------------------------

    def status(self) -> CampaignStatus:
        """Counts per device state (queued, admitted, succeeded, failed, timedout, cancelled),
        read now: one query, and one more for the failure reasons when there are failures."""
        self._tally = tallies.Tally.read(self.fleet, self.id)
        self._reasons = (0, {})
        return self._status()

    def _status(self) -> CampaignStatus:
        """The status as this tick keeps it (no query, but for reasons of new failures)."""
        counts = self._tally.counts()
        return CampaignStatus(self.id, self.record.status, counts, self._failure_reasons(counts),
                              list(self.record.log_lines), self._tally.groups())  # fmt: skip

    def _failure_reasons(self, counts: dict[str, int]) -> dict[str, int]:
        """The failure reasons and how many devices each stopped, read again only when the
        number of failed devices changed."""
        failed = counts.get(DeviceState.FAILED, 0) + counts.get(DeviceState.TIMEDOUT, 0)
        if failed and failed != self._reasons[0]:
            reasons = self.fleet.queries.group_by(
                f"{self._tag}.reason", self._in(DeviceState.FAILED, DeviceState.TIMEDOUT)
            )
            self._reasons = (failed, {str(k): v for k, v in reasons.items() if k})
        return self._reasons[1] if failed else {}

    def devices(self, state: DeviceState | str | None = None) -> list[tuple[str, DeviceProgress]]:
        """Each device of the campaign with its progress (state, group, step, attempt, reason),
        by device id; only those in `state` when it is given. One paged query.

        Raises:
            ValueError: `state` is not a device state.
        """
        condition = f"IS_DEFINED({self._tag})"
        if state is not None:
            condition = self._in(DeviceState(state))
        text = f"SELECT deviceId, {self._tag} AS progress FROM devices WHERE {condition}"
        rows = self.fleet.queries.run(text, page_size=1000)
        found = [(row["deviceId"], DeviceProgress.model_validate(row["progress"])) for row in rows]
        return sorted(found, key=lambda pair: pair[0])

    # -- control ---------------------------------------------------------------------------

    def _set_status(
        self, status: CampaignState, why: str,
        when: Callable[[CampaignState], bool] = lambda now: not now.final,
        also: Callable[[records.CampaignRecord], None] = lambda record: None,
        at: float | None = None,
    ) -> bool:  # fmt: skip
        """Set the status if `when(current status)` holds on the stored record (which another
        process may have changed since this one read it), and make the change `also` with it;
        True when it was set. `at` is the time to log it at (a tick's own time, so its lines
        read in the order it acted)."""
        now = self.clock() if at is None else at
        applied = False

        def change(record: records.CampaignRecord) -> None:
            nonlocal applied
            applied = when(record.status)
            if applied:
                also(record)
            if applied and record.status != status:
                record.status = status
                record.log(now, f"{status}: {why}")

        self.record.update(self.fleet, change)
        if applied:
            log.info("campaign %s %s: %s", self.id, status, why)
        return applied

    def pause(self, why: str = "paused by the operator") -> None:
        self._set_status(CampaignState.PAUSED, why)

    def resume(self) -> None:
        """Carry on after a pause; the pause earned no admissions (see `limiting`)."""
        if self._set_status(CampaignState.RUNNING, "resumed by the operator",
                            lambda now: now == CampaignState.PAUSED):  # fmt: skip
            self._bucket(limiting.TokenBucket().restart(self.clock()))

    def cancel(self) -> None:
        """Stop admitting; queued devices are cancelled; devices in flight are still followed to
        their outcome by `tick` (no retry, no next step)."""
        if self._set_status(CampaignState.CANCELLED, "cancelled by the operator"):
            self._cancel_queued("cancelled")
            in_flight = self.fleet.queries.count(self._in(DeviceState.ADMITTED))
            if in_flight:
                self.record.log(self.clock(), f"following {in_flight} devices in flight")
                self.record.save(self.fleet)

    def abort(self, why: str = "aborted by the operator") -> None:
        """Stop now: queued devices are cancelled and, when the spec asks for it, updated
        devices are rolled back (as when the abort criteria trip)."""
        if not self.record.status.final:
            self._abort(why)

    def forget(self) -> int:
        """Remove a finished campaign: its record and every device's tag for it (tags are
        limited to 8 KB per twin, so long-lived fleets clear old campaigns). Returns how many
        device tags were removed.

        Raises:
            ValueError: the campaign has not finished.
        """
        status = self.record.status
        if not status.final and status != CampaignState.CREATED:
            raise ValueError(f"campaign {self.id} is {status}; cancel it first")
        removed = 0
        for twin in self.fleet.queries.twins(f"IS_DEFINED({self._tag})", page_size=1000):
            self.fleet.twins.update_tags(twin.device_id, {TAG: {self.id: None}})
            removed += 1
        self.record.delete(self.fleet)
        return removed

    def _cancel_queued(self, reason: str) -> None:
        def cancel(progress: DeviceProgress) -> DeviceProgress | None:
            if progress.state != DeviceState.QUEUED:
                return None
            return progress.but(state=DeviceState.CANCELLED, reason=reason)

        for twin in self.fleet.queries.twins(self._in(DeviceState.QUEUED), page_size=1000):
            self._change(twin, cancel)

    def _change(
        self, twin: models.Twin, change: Callable[[DeviceProgress], DeviceProgress | None]
    ) -> bool:
        """Write `change(progress)` to a device's tag, reading the twin again when it changed
        meanwhile (a device reporting changes its etag); False when `change` declines (None)
        on the fresh progress, or the twin kept changing."""
        for _ in range(10):
            progress = DeviceProgress.of(twin.tags, self.id)
            changed = None if progress is None else change(progress)
            if changed is None:
                return False
            if self._write(twin.device_id, twin.etag, changed, progress):
                return True
            twin = self.fleet.twins.get(twin.device_id)
        return False

    def _spend(self, throttle: str = "twinUpdates") -> None:
        """Wait until the budget (if any) has room for one more request on `throttle`."""
        if self.budget is not None:
            self.budget.wait(throttle, 1, self.fleet.usage.snapshot())

    def _write(self, device_id: str, etag: str | None, progress: DeviceProgress,
               before: DeviceProgress | None) -> bool:  # fmt: skip
        """Write this campaign's tag on one device whole, moving the device from `before` to
        `progress` in the tally; False when another writer got there first (the twin's etag
        changed since it was read). A device deleted meanwhile (a retired one, say) took its
        tag with it: there is nothing left to write, and that is not a conflict (the next
        tick's tally no longer counts it)."""
        return self._writes.one(writes.Write(device_id, etag, progress, before))

    def rerun(self) -> None:
        """Run again: failed, timed-out and cancelled devices are queued at the step where they
        stopped, with a fresh retry budget; succeeded devices are skipped."""
        now = self.clock()
        again = 0
        stopped = (DeviceState.FAILED, DeviceState.TIMEDOUT, DeviceState.CANCELLED)

        def requeue(progress: DeviceProgress) -> DeviceProgress | None:
            if progress.state not in stopped:
                return None
            return progress.but(state=DeviceState.QUEUED, tries=0, not_before=None)

        for twin in self.fleet.queries.twins(self._in(*stopped), page_size=1000):
            again += self._change(twin, requeue)
        self.record.log(now, f"re-run: {again} devices queued again")
        bucket = limiting.TokenBucket().restart(now)

        def run_again(record: records.CampaignRecord) -> None:
            record.status = CampaignState.RUNNING
            record.tokens, record.last_tick = bucket.tokens, bucket.last

        self.record.update(self.fleet, run_again)

    # -- the loop --------------------------------------------------------------------------

    def run(self, *, poll: float = 1.0, until: Callable[[], bool] | None = None,
            on_tick: Callable[[CampaignStatus], None] | None = None) -> CampaignStatus:  # fmt: skip
        """Tick until the campaign is final and none of its devices is in flight (or `until()`
        is true); returns the last status. A hub that cannot be reached (through twin_manager's
        retries) stops no campaign: the controller logs it and tries again a pass later (and
        the outage earns no burst of admissions, see `limiting`)."""
        self.interval = poll
        while True:
            try:
                status = self.tick()
            except HubUnavailable as exc:
                log.warning("campaign %s: %s; trying again in %g s", self.id, exc, poll)
                time.sleep(poll)
                continue
            if on_tick is not None:
                on_tick(status)
            if status.settled or (until is not None and until()):
                return status
            time.sleep(poll)

    def tick(self) -> CampaignStatus:
        """One pass of the controller (see the module docstring)."""
        self.record = records.CampaignRecord.load(self.fleet, self.id)
        now = self.clock()
        status = self.record.status
        self._tally = tallies.Tally.read(self.fleet, self.id)
        if status.final or status == CampaignState.PAUSED:
            self._evaluate(now, stopped=status.final)
            self.record.save(self.fleet)
            return self._status()
        if self.spec.start_at is not None and now < self.spec.start_at:
            return self._status()
        if status == CampaignState.CREATED:
            self._enqueue(now)

            def start(record: records.CampaignRecord) -> None:
                record.started_at = record.started_at or now

            if not self._set_status(CampaignState.RUNNING, "started",
                                    lambda now: now == CampaignState.CREATED,
                                    also=start, at=now):  # fmt: skip
                return self._status()  # paused or cancelled before it started
        elif self.spec.mode == "continuous":
            self._enqueue(now)
        self._evaluate(now)
        current = self._status()
        if self._safety(current):
            return self._status()
        window = self.spec.window
        open_now = window is None or windows.in_window(window.cron, window.duration_minutes, now)
        if open_now and (self.spec.end_at is None or now < self.spec.end_at):
            self._admit(current, now)
        else:  # the window is shut, or the campaign has ended: no tokens pile up meanwhile
            self._idle(now)
        current = self._status()
        ended = self.spec.end_at is not None and now >= self.spec.end_at
        if self._tally.in_flight() == 0 and (self.spec.mode == "snapshot" or ended):
            self._cancel_queued("campaign ended")
            self._set_status(CampaignState.COMPLETED,
                             f"{current.counts.get(DeviceState.SUCCEEDED, 0)} succeeded, "
                             f"{current.failed} failed", at=now)  # fmt: skip
        return self._status()

    def _group_of(self, twin: dict[str, Any]) -> str:
        for group in self.spec.groups:
            if queries.parse_condition(group.condition).matches(twin):
                return group.name
        return "rest" if self.spec.groups else "all"

    def _enqueue(self, now: float) -> None:
        target = targeting.target_condition(self.spec)
        text = f"SELECT * FROM devices WHERE {target} AND NOT IS_DEFINED({self._tag})"
        added = 0
        for rows in workers.chunks(self.fleet.queries.run(text, page_size=1000), 1000):
            queued = [self._queued(row) for row in rows]
            written = self._writes.many(queued)
            added += sum(written)
            # a device reporting at this very moment changed its etag: read it again
            again = [write for write, done in zip(queued, written, strict=True) if not done]
            added += sum(workers.each(self.fleet, again, self._enqueue_one))
        if added:
            self.record.log(now, f"queued {added} devices")

    def _queued(self, row: dict[str, Any]) -> writes.Write:
        progress = DeviceProgress(state=DeviceState.QUEUED, group=self._group_of(row))
        return writes.Write(row["deviceId"], row.get("etag"), progress, None)

    def _enqueue_one(self, queued: writes.Write) -> bool:
        for _ in range(5):  # the device may be reporting at this very moment
            twin = self.fleet.twins.get(queued.device_id)
            if DeviceProgress.of(twin.tags, self.id) is not None:
                return False  # another controller queued it
            if self._write(queued.device_id, twin.etag, queued.progress, None):
                return True
        return False

    def _step_id(self, step: int) -> str:
        """What a step's attempts are tagged with (the campaign id, then the step)."""
        return self.id if step == 0 else f"{self.id}.{step}"

    def _device(self, twin: models.Twin, progress: DeviceProgress) -> api.Device:
        attempt = progress.attempt_of(self._step_id(progress.step))
        return api.Device(self.fleet, twin.device_id, attempt, twin.reported, twin.desired)

    def _evaluate(self, now: float, *, stopped: bool = False) -> None:
        """Record the outcome of each admitted device; once the campaign is `stopped` (aborted
        or cancelled) a failure is final and a succeeded step starts no next one."""
        if not self._tally.counts().get(DeviceState.ADMITTED):
            return
        admitted = self.fleet.queries.twins(self._in(DeviceState.ADMITTED), page_size=1000)
        for twins in workers.chunks(admitted, 1000):
            outcomes: list[writes.Write] = []
            logged: list[str] = []
            next_steps: list[tuple[models.Twin, DeviceProgress, int]] = []
            for twin in twins:
                decided = self._evaluate_one(twin, now, stopped)
                if isinstance(decided, _Outcome):
                    outcomes.append(decided.write)
                    logged += [decided.message] if decided.message else []
                elif decided is not None:
                    next_steps.append((twin, decided, decided.step + 1))
            self._writes.many(outcomes)
            for message in logged:
                self._log(now, message)
            self._start_many(next_steps, now)

    def _evaluate_one(
        self, twin: models.Twin, now: float, stopped: bool
    ) -> _Outcome | DeviceProgress | None:
        """What becomes of one admitted device: its outcome to write, its progress when its
        next step is to start, or None while it is in progress."""
        steps = self.spec.all_steps
        progress = DeviceProgress.of(twin.tags, self.id)
        if progress is None:
            return None
        params = steps[progress.step]
        verdict = api.registry().get(params.kind).outcome(params, self._device(twin, progress))
        if verdict.outcome == api.Outcome.IN_PROGRESS:
            if now - progress.admitted_epoch() < self.spec.timeout_seconds:
                return None
            verdict = api.Verdict(api.Outcome.FAILED, "timed out")
        if verdict.outcome == api.Outcome.SUCCEEDED:
            if progress.step + 1 < len(steps) and stopped:
                step = f"step {progress.step + 1} of {len(steps)}"
                why = f"campaign {self.record.status} after {step}"
                cancelled = progress.but(state=DeviceState.CANCELLED, reason=why)
                return _Outcome(writes.Write(twin.device_id, twin.etag, cancelled, progress))
            if progress.step + 1 < len(steps):
                return progress
            succeeded = progress.but(state=DeviceState.SUCCEEDED, reason=None)
            return _Outcome(writes.Write(twin.device_id, twin.etag, succeeded, progress))
        reason = verdict.reason
        if len(steps) > 1:
            reason = f"step {progress.step + 1}: {reason}"
        return self._retry_or_fail(twin.device_id, twin.etag, progress, reason, now,
                                   retry=not stopped)  # fmt: skip

    def _start(self, twin: models.Twin, progress: DeviceProgress, step: int, now: float) -> bool:
        """Claim the device for a new attempt at `step` (etag-guarded), then apply that step's
        pattern; False when another controller claimed it first."""
        return self._start_many([(twin, progress, step)], now) == 1

    def _start_many(
        self, starts: list[tuple[models.Twin, DeviceProgress, int]], now: float
    ) -> int:  # fmt: skip
        """`_start` each device, the claims written together (with the desired section of a
        pattern that is only that, `api.DesiredPatch`); returns how many were claimed."""
        if not starts:
            return 0
        claims, applied = [], []
        for twin, progress, step in starts:
            claim = progress.but(
                state=DeviceState.ADMITTED, step=step, attempt=progress.attempt + 1,
                tries=progress.tries + 1 if step == progress.step else 1,
                admitted_at=times.iso(now), not_before=None, reason=None,
            )  # fmt: skip
            params = self.spec.all_steps[step]
            pattern = api.registry().get(params.kind)
            desired = None
            if isinstance(pattern, api.DesiredPatch):
                desired = pattern.desired(params, self._device(twin, claim))
            claims.append(writes.Write(twin.device_id, twin.etag, claim, progress, desired))
            applied.append(desired is not None)
        claimed = self._writes.many(claims)
        rest = [
            (twin, progress, claim.progress)
            for (twin, progress, _), claim, done, whole in zip(
                starts, claims, claimed, applied, strict=True
            )
            if done and not whole
        ]
        workers.each(self.fleet, rest, lambda start: self._apply(*start, now))
        return sum(claimed)

    def _apply(
        self, twin: models.Twin, progress: DeviceProgress, claim: DeviceProgress, now: float
    ) -> None:
        """Apply the claimed step's pattern to the device, and write its outcome when the
        pattern knows it at once."""
        step = claim.step
        params = self.spec.all_steps[step]
        self._spend()
        try:
            verdict = api.registry().get(params.kind).apply(params, self._device(twin, claim))
        except Throttled:
            # Refused by the hub's quota, through every retry: not the device's failure. The
            # claim is released (its attempt number stays spent) and the tick ends.
            released = progress.but(attempt=claim.attempt)
            self._write(twin.device_id, None, released, claim)
            raise
        except HubError as exc:
            verdict = api.Verdict.failed(f"{exc.error_code or exc.status}")
        if verdict.note:
            self._log(now, verdict.note)
        if verdict.outcome == api.Outcome.SUCCEEDED:
            if step + 1 < len(self.spec.all_steps):
                try:
                    fresh = self.fleet.twins.get(twin.device_id)
                except DeviceNotFound:  # the step deleted it (retire): nothing follows
                    return
                self._start(fresh, claim, step + 1, now)
                return
            self._write(twin.device_id, None, claim.but(state=DeviceState.SUCCEEDED), claim)
        elif verdict.outcome == api.Outcome.FAILED:
            reason = verdict.reason
            if len(self.spec.all_steps) > 1:
                reason = f"step {step + 1}: {reason}"
            self._fail_or_retry(twin.device_id, None, claim, reason, now)

    def _fail_or_retry(self, device_id: str, etag: str | None, progress: DeviceProgress,
                       reason: str, now: float, *, retry: bool = True) -> None:  # fmt: skip
        outcome = self._retry_or_fail(device_id, etag, progress, reason, now, retry=retry)
        self._writes.one(outcome.write)
        self._log(now, outcome.message)

    def _retry_or_fail(self, device_id: str, etag: str | None, progress: DeviceProgress,
                       reason: str, now: float, *, retry: bool = True
                       ) -> _Outcome:  # fmt: skip
        """The write that queues a failed attempt again after its backoff while tries remain,
        else marks the device failed (or timed out); and what to log of it."""
        retries = self.spec.retries
        if retry and progress.tries < retries.max_attempts:
            delay = retries.backoff_seconds * 2 ** (progress.tries - 1)
            queued = progress.but(state=DeviceState.QUEUED, reason=reason, not_before=now + delay)
            message = (f"{device_id}: attempt {progress.tries} failed ({reason}); "
                       f"retry in {delay:g} s")  # fmt: skip
            return _Outcome(writes.Write(device_id, etag, queued, progress), message)
        state = DeviceState.TIMEDOUT if reason.endswith("timed out") else DeviceState.FAILED
        failed = progress.but(state=state, reason=reason)
        return _Outcome(writes.Write(device_id, etag, failed, progress),
                        f"{device_id}: {state} ({reason})")  # fmt: skip

    # -- safety ----------------------------------------------------------------------------

    def _safety(self, current: CampaignStatus) -> bool:
        """Check abort criteria and health gates (`safety`); True when the campaign stopped."""
        succeeded = current.counts.get(DeviceState.SUCCEEDED, 0)

        def unhealthy(condition: str) -> int:
            return self.fleet.queries.count(f"{self._in(DeviceState.SUCCEEDED)} AND ({condition})")

        stop = safety.tripped(self.spec, current.finished, current.failed, succeeded, unhealthy)
        if stop is not None:
            self._stop(stop)
        return stop is not None

    def _stop(self, stop: safety.Stop) -> None:
        if stop.action == "abort":
            self._abort(stop.why)
        else:
            self._set_status(CampaignState.PAUSED, stop.why)

    def _abort(self, why: str) -> None:
        self._cancel_queued("campaign aborted")
        params = self.spec.pattern
        previous = api.registry().get(params.kind).rollback(params)
        if self.spec.abort and self.spec.abort.rollback and previous is not None:
            pattern = api.registry().get(previous.kind)
            touched = self._in(DeviceState.ADMITTED, DeviceState.FAILED)
            for twin in self.fleet.queries.twins(touched, page_size=1000):
                progress = DeviceProgress.of(twin.tags, self.id)
                attempt = api.Attempt(f"{self.id}-rollback", progress.attempt if progress else 0,
                                      times.iso(self.clock()))  # fmt: skip
                device = api.Device(self.fleet, twin.device_id, attempt, twin.reported,
                                    twin.desired)  # fmt: skip
                try:
                    pattern.apply(previous, device)
                except HubError as exc:
                    log.warning("rolling %s back failed: %s", twin.device_id, exc)
                if progress is not None and progress.state == DeviceState.ADMITTED:
                    why = f"campaign aborted: rolled back ({previous.kind})"
                    rolled = progress.but(state=DeviceState.CANCELLED, reason=why)
                    self._write(twin.device_id, None, rolled, progress)
        self._set_status(CampaignState.ABORTED, why)

    # -- admission -------------------------------------------------------------------------

    def _bucket(self, bucket: limiting.TokenBucket) -> None:
        """Store the rate limiter's state in the record."""

        def store(record: records.CampaignRecord) -> None:
            record.tokens, record.last_tick = bucket.tokens, bucket.last

        self.record.update(self.fleet, store)

    def _idle(self, now: float) -> None:
        """Nothing can be admitted now: the wait earns no tokens (see `limiting`)."""

        def idle(record: records.CampaignRecord) -> None:
            bucket = limiting.TokenBucket(record.tokens, record.last_tick).idle(now)
            record.tokens, record.last_tick = bucket.tokens, bucket.last

        self.record.update(self.fleet, idle)

    def _admit(self, current: CampaignStatus, now: float) -> None:
        group = safety.current_group(self.spec, self._tally)
        if isinstance(group, safety.Stop):
            self._stop(group)
        if not isinstance(group, str) or self.record.status != CampaignState.RUNNING:
            self._idle(now)
            return
        record = self.record
        rollout = self.spec.rollout
        rate = rollout.rate(current.counts.get(DeviceState.SUCCEEDED, 0))
        # A controller ticking every `interval` seconds needs that much of the rate at once.
        capacity = max(rollout.capacity(rate), rate * self.interval / 60)
        outage_after = max(limiting.DEFAULT_OUTAGE_AFTER, 5 * self.interval)
        bucket = limiting.TokenBucket(record.tokens, record.last_tick).refill(
            now, rate, capacity, outage_after
        )
        allowed = bucket.available
        admitted = 0
        try:
            if allowed and self._tally.of(group).get(DeviceState.QUEUED):
                admitted = self._admit_from(group, allowed, now)
        finally:  # a tick the hub throttled still spends what it admitted
            bucket = bucket.spend(admitted)
            if admitted < allowed:  # nothing more to admit now: waiting earns nothing
                bucket = bucket.idle(now)
            if admitted:
                record.log(now, f"admitted {admitted} from group {group} at {rate:g}/min")
            self._bucket(bucket)

    def _admit_from(self, group: str, allowed: int, now: float) -> int:
        """Claim and start up to `allowed` queued devices of `group` that are due; returns how
        many. The query selects only due devices and is read one page of at most `allowed`
        rows at a time, so it costs one query unless other controllers claim devices first."""
        tag = self._tag
        due = f"(NOT IS_DEFINED({tag}.notBefore) OR {tag}.notBefore <= {now:.3f})"
        condition = (
            f"{self._in(DeviceState.QUEUED)} AND {tag}.group = {queries.quote(group)} AND {due}"
        )
        if self.spec.trigger == "on_connect":
            condition += " AND connectionState = 'Connected'"
        admitted = 0
        batch: list[tuple[models.Twin, DeviceProgress, int]] = []
        for twin in self.fleet.queries.twins(condition, page_size=min(allowed, 1000)):
            progress = DeviceProgress.of(twin.tags, self.id)
            if progress is None or progress.state != DeviceState.QUEUED:
                continue
            if targeting.is_retired(twin.tags):  # retired since it was queued
                retired = progress.but(state=DeviceState.CANCELLED, reason="device retired")
                self._write(twin.device_id, twin.etag, retired, progress)
                continue
            batch.append((twin, progress, progress.step))
            if len(batch) >= allowed - admitted:
                admitted += self._start_many(batch, now)
                batch = []
                if admitted >= allowed:
                    break  # before the next row: it may be on a page not yet read
        admitted += self._start_many(batch, now)
        return admitted
