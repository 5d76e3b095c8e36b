"""Where a campaign lives: in the hub, never only in a process, and never among the devices.

A campaign is stored as an IoT Hub *automatic device configuration* (`twinfleet-<id>`) whose
target condition, `deviceId = ''`, matches no device (no identity has an empty id), so it
never writes a twin. Configurations are what IoT Hub offers for fleet-wide intent; they have
etags, survive restarts, are read by any process with the connection string, and are not
devices: `device list`, the hub's device statistics and `SELECT ... FROM devices` never see
them. This works the same on Azure IoT Hub (where, on S1, a hub holds up to 100
configurations: `campaign forget` removes finished ones).

- the **spec** is the configuration's content (`properties.desired.twinfleetCampaign`), which
  IoT Hub never lets change after creation, as a campaign's definition never does;
- the **state** that changes (status, the rate limiter, when it started, a bounded log) is in
  its labels, which are mutable and written with the configuration's etag.

An operator pausing or cancelling from one process while `campaign run` ticks in another must
neither fail nor be overwritten, so every change to the record is a function (`update`): when
another writer got there first (412), the record is read again, the change applied to the fresh
state (with this writer's log lines not yet stored) and written again. A change looks at the
record it is given, never at what it read before.

The log is in time order whatever the order of its writers. Processes log with times taken from
their own clocks at different moments (`tick` takes its time once, at its start; an operator's
`pause` from another process lands in between), and a writer that lost the etag race merges its
unstored lines into the fresh record's: lines are kept sorted by their time (stably, so lines of
one moment keep the order they were logged in), and the last `LOG_LIMIT` by time are stored. A
change re-applied after a conflict logs again, so the lines it logged on the failed attempt are
dropped first: each line is stored once.

Each device's own progress lives in its twin's tags (see `progress.py`); this module owns only
the record's layout, and everything else goes through `CampaignRecord`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from patterns.campaigns import specs
from patterns.campaigns.progress import CampaignState
from patterns.contracts import times
from twin_manager import DeviceNotFound, HubError, PreconditionFailed, TwinManager, models

__all__ = ["LOG_LIMIT", "CampaignRecord", "config_id", "list_records"]

LOG_LIMIT = 25
_MARK = "twinfleet"
_CONTENT = "properties.desired.twinfleetCampaign"
_NO_DEVICE = "deviceId = ''"
_CONFLICT_RETRIES = 20


def config_id(campaign_id: str) -> str:
    """The configuration id of a campaign (configuration ids are lower case on IoT Hub)."""
    lowered = campaign_id.lower()
    if lowered == campaign_id:
        return f"twinfleet-{campaign_id}"
    digest = hashlib.sha256(campaign_id.encode()).hexdigest()[:8]
    return f"twinfleet-{lowered}-{digest}"


class CampaignRecord:
    """A campaign's definition and state as stored in the hub.

    Attributes:
        spec: the campaign (never changes).
        status: where the campaign stands.
        tokens, last_tick: the rate limiter (a token bucket refilled by the clock).
        started_at: when it started running (Unix seconds), once it has.
        log: the last `LOG_LIMIT` execution log lines.
    """

    def __init__(self, spec: specs.CampaignSpec, configuration: models.Configuration) -> None:
        self.spec = spec
        self._configuration = configuration
        labels = configuration.labels
        self.status = CampaignState(labels.get("status", CampaignState.CREATED))
        limiter = json.loads(labels.get("limiter") or "{}")
        self.tokens = float(limiter.get("tokens", 1.0))
        self.last_tick: float | None = limiter.get("lastTick")
        self.started_at: float | None = limiter.get("startedAt")
        self.log_lines = _in_time_order([labels[k] for k in sorted(labels) if k.startswith("log.")])
        self._unsaved_log: list[str] = []

    @property
    def etag(self) -> str | None:
        return self._configuration.etag

    @classmethod
    def create(cls, fleet: TwinManager, spec: specs.CampaignSpec) -> CampaignRecord:
        """Store a new campaign.

        Raises:
            Conflict: a campaign with this id exists.
        """
        configuration = fleet.configurations.create(
            config_id(spec.id),
            target_condition=_NO_DEVICE,
            desired={_CONTENT: spec.model_dump(mode="json")},
            labels=cls._labels(spec, CampaignState.CREATED, {"tokens": 1.0}, []),
        )
        return cls(spec, configuration)

    @classmethod
    def load(cls, fleet: TwinManager, campaign_id: str) -> CampaignRecord:
        """Raises DeviceNotFound (a `HubError` with a clear message) for an unknown campaign."""
        try:
            configuration = fleet.configurations.get(config_id(campaign_id))
        except HubError as exc:
            if exc.status != 404:
                raise
            raise DeviceNotFound(
                f"No campaign {campaign_id!r} on this hub (`twinfleet campaign list` shows them).",
                status=404, error_code=exc.error_code,
            ) from exc  # fmt: skip
        return cls._of(configuration)

    @classmethod
    def _of(cls, configuration: models.Configuration) -> CampaignRecord:
        spec = specs.CampaignSpec.model_validate(configuration.device_content[_CONTENT])
        return cls(spec, configuration)

    @staticmethod
    def _labels(spec: specs.CampaignSpec, status: CampaignState, limiter: dict[str, Any],
                log: list[str]) -> dict[str, str]:  # fmt: skip
        labels = {
            _MARK: "campaign",
            "campaignId": spec.id,
            "pattern": spec.pattern.kind,
            "status": str(status),
            "limiter": json.dumps(limiter, separators=(",", ":")),
        }
        labels.update({f"log.{i:02d}": line for i, line in enumerate(log[-LOG_LIMIT:])})
        return labels

    def update(self, fleet: TwinManager, change: Callable[[CampaignRecord], object]) -> None:
        """Apply `change` to this record and write it (with the log lines not yet stored); when
        another writer changed the record meanwhile, read it again and apply `change` again.

        Raises:
            PreconditionFailed: other writers kept winning, many times in a row.
        """
        for attempt in range(_CONFLICT_RETRIES):
            before = list(self._unsaved_log)  # the lines logged before this change
            change(self)
            limiter = {"tokens": self.tokens, "lastTick": self.last_tick,
                       "startedAt": self.started_at}  # fmt: skip
            labels = self._labels(self.spec, self.status, limiter, self.log_lines)
            try:
                self._configuration = fleet.configurations.update(
                    self._configuration, labels=labels
                )
            except PreconditionFailed:
                if attempt + 1 == _CONFLICT_RETRIES:
                    raise
                fresh = CampaignRecord.load(fleet, self.spec.id)
                self._configuration = fresh._configuration
                self.status, self.tokens = fresh.status, fresh.tokens
                self.last_tick, self.started_at = fresh.last_tick, fresh.started_at
                self.log_lines = _in_time_order([*fresh.log_lines, *before])
                self._unsaved_log = before
                continue
            self._unsaved_log = []
            return

    def save(self, fleet: TwinManager) -> None:
        """Write the log lines not yet stored, if any (see `update`)."""
        if self._unsaved_log:
            self.update(fleet, lambda record: None)

    def log(self, now: float, message: str) -> None:
        """Add a line to the execution log (stored by the next `update` or `save`)."""
        line = f"{times.iso(now)} {message}"[:500]
        self._unsaved_log.append(line)
        self.log_lines = _in_time_order([*self.log_lines, line])

    def delete(self, fleet: TwinManager) -> None:
        fleet.configurations.delete(config_id(self.spec.id))


def _in_time_order(lines: list[str]) -> list[str]:
    """The last `LOG_LIMIT` lines by the time they start with (ISO-8601 UTC, which sorts as
    text), lines of one moment in the order given."""
    return sorted(lines, key=lambda line: line.partition(" ")[0])[-LOG_LIMIT:]


def list_records(fleet: TwinManager) -> Iterator[CampaignRecord]:
    """Every campaign on the hub."""
    for configuration in fleet.configurations.list(top=100):
        if configuration.labels.get(_MARK) == "campaign" and _CONTENT in (
            configuration.device_content
        ):
            yield CampaignRecord._of(configuration)
