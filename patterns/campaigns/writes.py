"""A tick's campaign-tag writes, many devices to a request where the hub's quota allows it.

Every change of a device's state in a campaign is a write of its tag guarded by the twin's etag,
so that of two controllers only one moves a device. One PATCH a device is a round trip each: a
controller spends about as long on its own requests as the fleet's devices take to update, and
that sets the pace of a large campaign. IoT Hub's bulk registry operation (`POST /devices`) takes
up to 100 `ExportImportDevice` entries in one request, each `updateTwinIfMatchETag` against its
own twin etag (or `updateTwin` where the controller holds none), each applied or refused on its
own: the same guarded writes, a hundred a round trip. An entry may carry desired properties
beside the tag, so a claim and a pattern's desired section (`api.DesiredPatch`) are one write.

IoT Hub meters a bulk operation one unit per device on the identity-registry throttle, which is
far scarcer than twin updates on every tier (S1: 100 a minute against 50 a second). So `Writes`
takes the bulk lane only while the campaign's budget knows no rate for that throttle: with no
budget (an unmetered hub, such as the local one without a tier) or before the hub has refused
one. With a tier, or after a 429 there, it writes one PATCH a device (on the tick's workers),
as the budget's arithmetic assumes (see `budgets`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.campaigns import _workers as workers
from patterns.campaigns import budgets
from patterns.campaigns.progress import TAG, DeviceProgress
from twin_manager import DeviceNotFound, HubError, PreconditionFailed, TwinManager

__all__ = ["BULK_THROTTLE", "Write", "Writes"]

log = logging.getLogger(__name__)

BULK_THROTTLE = "identityRegistryOperations"
_PER_REQUEST = 100  # IoT Hub's most entries in one bulk registry operation


@dataclass(frozen=True)
class Write:
    """One device's tag moving from `before` (None: not in the campaign) to `progress`, guarded
    by `etag` (None: whatever the twin holds), with `desired` properties merged in the same
    write when given."""

    device_id: str
    etag: str | None
    progress: DeviceProgress
    before: DeviceProgress | None
    desired: Mapping[str, Any] | None = None


class Writes:
    """Tag writes for one campaign.

    Args:
        fleet: the hub.
        campaign_id: whose tag is written.
        budget: the campaign's budget now (None: not budgeted).
        spend: waits for room for one request on a throttle.
        moved: told of each write made (to keep the tick's tally).
    """

    def __init__(
        self, fleet: TwinManager, campaign_id: str, *,
        budget: Callable[[], budgets.Budget | None], spend: Callable[[str], None],
        moved: Callable[[DeviceProgress | None, DeviceProgress], None],
    ) -> None:  # fmt: skip
        self._fleet = fleet
        self._id = campaign_id
        self._budget = budget
        self._spend = spend
        self._moved = moved

    def bulk(self) -> bool:
        """True while writes go a hundred to a request (see the module docstring)."""
        budget = self._budget()
        return budget is None or budget.rate(BULK_THROTTLE) is None

    def one(self, write: Write) -> bool:
        """Make one write; False when another writer got there first (the etag changed). A
        device deleted meanwhile took its tag with it: nothing is left to write, and that is
        no conflict."""
        self._spend("twinUpdates")
        try:
            self._fleet.twins.update(
                write.device_id, tags=self._tags(write), desired=write.desired,
                if_match=write.etag or "*",
            )  # fmt: skip
        except PreconditionFailed:
            return False
        except DeviceNotFound:
            log.info("campaign %s: device %s is no longer in the hub", self._id, write.device_id)
            return True
        self._moved(write.before, write.progress)
        return True

    def many(self, writes: Sequence[Write]) -> list[bool]:
        """Make every write (as `one`), in bulk requests when allowed; the results in order."""
        if not self.bulk() or len(writes) < 2:
            return workers.each(self._fleet, writes, self.one)
        results: list[bool] = []
        for chunk in workers.chunks(writes, _PER_REQUEST):
            results += self._bulk(chunk)
        return results

    def _bulk(self, writes: list[Write]) -> list[bool]:
        self._spend(BULK_THROTTLE)
        entries = []
        for write in writes:
            entry: dict[str, Any] = {"id": write.device_id, "tags": self._tags(write)}
            if write.etag:
                entry.update(importMode="updateTwinIfMatchETag", twinETag=write.etag)
            else:
                entry["importMode"] = "updateTwin"
            if write.desired:
                entry["properties"] = {"desired": dict(write.desired)}
            entries.append(entry)
        failed = {f.device_id: f for f in self._fleet.devices.bulk(entries).errors}
        results = []
        for write in writes:
            failure = failed.get(write.device_id)
            if failure is None:
                self._moved(write.before, write.progress)
                results.append(True)
            elif failure.error_code == "PreconditionFailed":
                results.append(False)
            elif failure.error_code == "DeviceNotFound":
                log.info("campaign %s: device %s is no longer in the hub", self._id,
                         write.device_id)  # fmt: skip
                results.append(True)
            else:
                raise HubError(
                    f"The hub refused the campaign's write to {write.device_id}: "
                    f"{failure.error_code} {failure.error_status}".rstrip(),
                    error_code=failure.error_code, device_id=write.device_id,
                )  # fmt: skip
        return results

    def _tags(self, write: Write) -> dict[str, Any]:
        return {TAG: {self._id: write.progress.wire()}}
