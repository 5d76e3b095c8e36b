"""When a campaign must stop, and which group it is rolling out: decisions on the counts a tick
keeps (`tallies`), which the campaign then acts on (pausing or aborting it, admitting from the
group).

- Abort criteria: at least `failure_percent` of at least `min_finished` finished devices failed
  (timed out counts as failed).
- Health gates: of the devices updated so far (at least `min_devices`), more than
  `max_fraction` match a condition over what they report; the gate pauses or aborts. Counting
  them is one hub query per gate, which the caller makes (`unhealthy`).
- Groups go one after another: the first with devices still queued or admitted is the one being
  rolled out; a group that has finished devices failing at or above its `error_threshold`, or
  that finished below its `success_threshold`, pauses the campaign before the next one starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from patterns.campaigns import specs, tallies
from patterns.campaigns.progress import FINISHED, DeviceState

__all__ = ["Stop", "current_group", "tripped"]


@dataclass(frozen=True)
class Stop:
    """The campaign must stop: pause it (an operator resumes) or abort it, saying why."""

    action: Literal["pause", "abort"]
    why: str


def tripped(
    spec: specs.CampaignSpec, finished: int, failed: int, succeeded: int,
    unhealthy: Callable[[str], int],
) -> Stop | None:  # fmt: skip
    """The abort criteria and health gates, on the campaign's counts; `unhealthy(condition)` is
    how many succeeded devices match a gate's condition."""
    abort = spec.abort
    if abort is not None and finished >= abort.min_finished:
        percent = 100 * failed / finished
        if percent >= abort.failure_percent:
            return Stop("abort", f"{percent:.0f}% of {finished} finished devices failed "
                                 f"(threshold {abort.failure_percent:g}%)")  # fmt: skip
    for gate in spec.health_gates:
        if succeeded < gate.min_devices:
            continue
        bad = unhealthy(gate.condition)
        if bad / succeeded > gate.max_fraction:
            why = f"health gate {gate.condition!r}: {bad} of {succeeded} updated devices"
            return Stop(gate.action, why)
    return None


def current_group(spec: specs.CampaignSpec, tally: tallies.Tally) -> str | Stop | None:
    """The first group with devices still to go; a `Stop` (pause) when a group that is done, or
    partly done, is unhealthy; None when no group has devices left."""
    names = [g.name for g in spec.groups] + ["rest"] if spec.groups else ["all"]
    for name in names:
        counts = tally.of(name)
        total = sum(counts.values())
        if not total:
            continue
        group = next((g for g in spec.groups if g.name == name), None)
        finished = sum(counts.get(s, 0) for s in FINISHED)
        failed = counts.get(DeviceState.FAILED, 0) + counts.get(DeviceState.TIMEDOUT, 0)
        if group is not None and finished:
            errors = failed / finished
            if errors >= group.error_threshold and errors > 0:
                return Stop("pause", f"group {name}: {errors:.0%} of finished devices failed")
        if tally.in_flight(name):
            return name
        succeeded = counts.get(DeviceState.SUCCEEDED, 0)
        if group is not None and succeeded / total < group.success_threshold:
            return Stop("pause", f"group {name} finished below its success threshold")
    return None
