"""Where a campaign lives: in the hub, never only in a process.

The campaign itself is the twin of a disabled device identity, `twinfleet-campaign-<id>`, whose
tag `twinfleetCampaign` holds the spec, the status, the rate limiter's state and a bounded
execution log. Each targeted device carries its own progress in the tag `twinfleet.<id>`
(`state`, `attempt`, `group`, `admittedAt`, `reason`). Any process with the connection string can
load, watch, pause or run the campaign, and counts come from GROUP BY queries over those tags.
Writes to a device's tag use its twin etag, so two controllers never admit a device twice.

The record is written with its etag too: an operator pausing or cancelling from one process while
`campaign run` ticks in another must neither fail nor be overwritten. So every change to the
record is a function (`update`): when another writer got there first, the record is read again
and the change applied to the fresh state (with this writer's log lines not yet stored), then
written again. A change looks at the state it is given, never at what it read before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from patterns.campaigns import specs
from twin_manager import DeviceNotFound, PreconditionFailed, TwinManager

__all__ = ["LOG_LIMIT", "RECORD_TAG", "CampaignRecord", "iso", "record_device_id"]

RECORD_TAG = "twinfleetCampaign"
LOG_LIMIT = 25
_CONFLICT_RETRIES = 20


def record_device_id(campaign_id: str) -> str:
    return f"twinfleet-campaign-{campaign_id}"


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class CampaignRecord:
    """The campaign's twin: spec, status and log, read and written with its etag."""

    def __init__(self, spec: specs.CampaignSpec, state: dict[str, Any], etag: str | None) -> None:
        self.spec = spec
        self.state = state
        self.etag = etag
        self._unsaved_log: list[str] = []

    @property
    def status(self) -> str:
        return str(self.state.get("status", "created"))

    @classmethod
    def create(cls, fleet: TwinManager, spec: specs.CampaignSpec) -> CampaignRecord:
        """Store a new campaign (Conflict if the id is taken)."""
        device_id = record_device_id(spec.id)
        fleet.create_device(device_id, enabled=False)
        state = {"status": "created", "tokens": 1.0, "lastTick": None, "log": []}
        body = {RECORD_TAG: {"spec": spec.model_dump(mode="json"), **state}}
        twin = fleet.update_tags(device_id, body)
        return cls(spec, state, twin.etag)

    @classmethod
    def load(cls, fleet: TwinManager, campaign_id: str) -> CampaignRecord:
        """Raises DeviceNotFound (with a clear message) for an unknown campaign."""
        try:
            twin = fleet.get_twin(record_device_id(campaign_id))
        except DeviceNotFound as exc:
            raise DeviceNotFound(
                f"No campaign {campaign_id!r} on this hub.", status=404, error_code=exc.error_code
            ) from exc
        data = dict(twin.tags.get(RECORD_TAG) or {})
        spec = specs.CampaignSpec.model_validate(data.pop("spec"))
        return cls(spec, data, twin.etag)

    def update(self, fleet: TwinManager, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply `change` to the state and write it (with the log lines not yet stored); when
        another writer changed the record meanwhile, read it again and apply `change` again.

        Raises:
            PreconditionFailed: other writers kept winning, many times in a row.
        """
        for attempt in range(_CONFLICT_RETRIES):
            change(self.state)
            self.state["log"] = list(self.state.get("log", []))[-LOG_LIMIT:]
            try:
                twin = fleet.update_tags(
                    record_device_id(self.spec.id), {RECORD_TAG: self.state},
                    if_match=self.etag or "*",
                )  # fmt: skip
            except PreconditionFailed:
                if attempt + 1 == _CONFLICT_RETRIES:
                    raise
                fresh = CampaignRecord.load(fleet, self.spec.id)
                self.state, self.etag = fresh.state, fresh.etag
                self.state["log"] = [*self.state.get("log", []), *self._unsaved_log]
                continue
            self.etag = twin.etag
            self._unsaved_log = []
            return

    def save(self, fleet: TwinManager) -> None:
        """Write the log lines not yet stored (see `update`)."""
        self.update(fleet, lambda state: None)

    def log(self, now: float, message: str) -> None:
        line = f"{iso(now)} {message}"
        self._unsaved_log.append(line)
        self.state["log"] = [*self.state.get("log", []), line][-LOG_LIMIT:]
