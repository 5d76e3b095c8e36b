"""How many of a campaign's devices stand in each state of each group: one query, then kept.

A controller tick needs the counts per state (abort criteria, health gates, completion, the
ramp's rate) and per group and state (which group is being rolled out, its error and success
thresholds). Read as GROUP BY queries, that was one query per state column and one per group on
every tick, and on an S1 hub (20 queries a minute) the reads alone set the pace. Each device's
campaign tag carries `tally`, its state and group in one string (`admitted/canary`, see
`progress.DeviceProgress.tally`), so a single `GROUP BY tally` answers all of it: its rows are
the (state, group) pairs in use, a handful, whatever the fleet's size or the number of groups.

Within a tick the controller then keeps the counts itself: every tag it writes (etag-guarded, so
each change of state is made by exactly one writer) moves one device from one (state, group) to
another (`move`). The next tick reads them again, so another controller's writes, an operator's
and a crash between a write and its count are all seen a tick later, never lost: the tags are
the truth, the tally a view of them read once per tick.

Tags written before `tally` existed are counted from the tags themselves (one more query, whose
rows are only those devices), so a campaign started by an older controller carries on.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

from patterns.campaigns.progress import FINISHED, IN_FLIGHT, TAG, DeviceProgress, DeviceState
from twin_manager import TwinManager

__all__ = ["Tally"]


class Tally:
    """Devices per group and state of one campaign."""

    def __init__(self, groups: Mapping[str, Mapping[str, int]] | None = None) -> None:
        self._groups: dict[str, Counter[str]] = {
            group: Counter(states) for group, states in (groups or {}).items()
        }
        self._lock = threading.Lock()  # a tick's workers move devices side by side

    @classmethod
    def read(cls, fleet: TwinManager, campaign_id: str) -> Tally:
        """The counts as the hub has them now: one GROUP BY query (plus one for tags written
        before `tally` existed, while any are left)."""
        tag = f"tags.{TAG}.{campaign_id}"
        tally = cls()
        untallied = 0
        for value, count in fleet.queries.group_by(f"{tag}.tally", f"IS_DEFINED({tag})").items():
            if not isinstance(value, str):
                untallied += count
                continue
            state, _, group = value.partition("/")
            if state in DeviceState.__members__.values():
                tally._add(group, state, count)
        if untallied:
            text = (f"SELECT {tag} AS progress FROM devices "
                    f"WHERE IS_DEFINED({tag}) AND NOT IS_DEFINED({tag}.tally)")  # fmt: skip
            for row in fleet.queries.run(text, page_size=1000):
                progress = DeviceProgress.model_validate(row["progress"])
                tally._add(progress.group, progress.state, 1)
        return tally

    def _add(self, group: str, state: str, count: int) -> None:
        state = DeviceState(state).value  # plain strings as keys, whether read or written
        states = self._groups.setdefault(group, Counter())
        states[state] = max(0, states[state] + count)
        if not states[state]:
            del states[state]

    def move(self, before: DeviceProgress | None, after: DeviceProgress) -> None:
        """Count a tag this controller wrote: the device left `before` (None: it was not in the
        campaign) for `after`."""
        with self._lock:
            if before is not None:
                self._add(before.group, before.state, -1)
            self._add(after.group, after.state, 1)

    def counts(self) -> dict[str, int]:
        """Devices per state, over every group (states with none left out)."""
        total: Counter[str] = Counter()
        with self._lock:
            for states in self._groups.values():
                total.update(states)
        return {state: n for state, n in total.items() if n}

    def of(self, group: str) -> dict[str, int]:
        """Devices per state in one group."""
        with self._lock:
            return {state: n for state, n in self._groups.get(group, Counter()).items() if n}

    def groups(self) -> dict[str, dict[str, int]]:
        """Devices per state, per group."""
        with self._lock:
            names = sorted(self._groups)
        return {group: self.of(group) for group in names if self.of(group)}

    def in_flight(self, group: str | None = None) -> int:
        """Devices queued or admitted (in one group, or in all)."""
        counts = self.counts() if group is None else self.of(group)
        return sum(counts.get(state, 0) for state in IN_FLIGHT)

    def finished(self) -> int:
        counts = self.counts()
        return sum(counts.get(state, 0) for state in FINISHED)
