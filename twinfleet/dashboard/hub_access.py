"""The dashboard's one seam onto the hub: `twin_manager` and `patterns.campaigns`, nothing else.

Every view reads and acts through `HubAccess`, so the dashboard works the same against the local
hub and Azure IoT Hub, and a change in the back-end APIs (where campaign progress is stored, say)
is adapted here alone. Methods are synchronous (the SDK is); the views call them in worker
threads. Each method that queries says what it costs in hub queries (`cost`), for the budget.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import queries
from patterns.campaigns import Campaign, Plan, plan, records
from twin_manager import Job, MethodResult, Twin, TwinManager
from twin_manager.models import DeviceJobResult

__all__ = [
    "FINISHED_STATES",
    "STEERING",
    "CampaignProgress",
    "CampaignSummary",
    "DeviceCampaign",
    "HubAccess",
    "QueryPage",
]

log = logging.getLogger(__name__)

FINISHED_STATES = ("succeeded", "failed", "timedout", "cancelled")
STEERING = ("pause", "resume", "cancel", "abort")


@dataclass(frozen=True)
class QueryPage:
    rows: list[dict[str, Any]]
    continuation: str | None


@dataclass(frozen=True)
class CampaignSummary:
    campaign_id: str
    kind: str
    status: str
    target: str


@dataclass(frozen=True)
class DeviceCampaign:
    """One campaign's state on one device, from the device's own twin."""

    campaign_id: str
    state: str
    reason: str | None
    attempt: int
    group: str | None


@dataclass
class CampaignProgress:
    """What the campaign pages show: record, counts by state and by group, failure reasons."""

    summary: CampaignSummary
    spec: dict[str, Any]
    log: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    group_totals: dict[str, int] = field(default_factory=dict)
    group_finished: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in FINISHED_STATES)


class HubAccess:
    """Reads and actions of the dashboard over one hub.

    Args:
        fleet: the hub's TwinManager (its connection string never leaves this object).
    """

    def __init__(self, fleet: TwinManager) -> None:
        self._fleet = fleet

    # -- queries (each page is one hub query) -------------------------------------------------

    def validate(self, text: str) -> None:
        """Raises twin_manager.InvalidQuery with line and column."""
        self._fleet.queries.validate(text)

    def query_page(self, text: str, continuation: str | None, page_size: int) -> QueryPage:
        rows, token = self._fleet.queries.page(text, continuation, page_size=page_size)
        return QueryPage(rows, token)

    def group_by(self, path: str, condition: str | None = None) -> list[tuple[Any, int]]:
        """One GROUP BY query: `(value, count)` sorted by count, devices lacking it as None."""
        groups = self._fleet.queries.group_by(path, condition)
        return sorted(groups.items(), key=lambda item: (-item[1], str(item[0])))

    def count(self, condition: str | None = None) -> int:
        return self._fleet.queries.count(condition)

    # -- devices ------------------------------------------------------------------------------

    def twin(self, device_id: str) -> Twin:
        """Raises twin_manager.DeviceNotFound."""
        return self._fleet.twins.get(device_id)

    def device_campaigns(self, twin: Twin) -> list[DeviceCampaign]:
        """The campaigns that touched this device and their outcome for it."""
        mine = twin.tags.get("twinfleet")
        if not isinstance(mine, Mapping):
            return []
        found = []
        for campaign_id, state in mine.items():
            if not isinstance(state, Mapping):
                continue
            found.append(
                DeviceCampaign(
                    str(campaign_id),
                    str(state.get("state", "?")),
                    None if state.get("reason") is None else str(state.get("reason")),
                    int(state.get("attempt") or 0),
                    None if state.get("group") is None else str(state.get("group")),
                )
            )
        return sorted(found, key=lambda c: c.campaign_id)

    def invoke(self, device_id: str, method: str, payload: Any, timeout: int) -> MethodResult:
        return self._fleet.methods.invoke(device_id, method, payload, timeout=timeout)

    def update_desired(self, device_id: str, patch: Mapping[str, Any], etag: str) -> Twin:
        """Raises twin_manager.PreconditionFailed when the twin changed since `etag`."""
        return self._fleet.twins.update_desired(device_id, patch, if_match=etag)

    # -- campaigns ----------------------------------------------------------------------------

    def campaigns(self) -> list[CampaignSummary]:
        """Every campaign on the hub (one request: campaigns are configurations)."""
        found = [
            CampaignSummary(r.spec.id, r.spec.pattern.kind, str(r.status), r.spec.target)
            for r in records.list_records(self._fleet)
        ]
        return sorted(found, key=lambda c: c.campaign_id)

    def _tag(self, campaign_id: str) -> str:
        return f"tags.twinfleet.{campaign_id}"

    def campaign_state_counts(self, campaign_id: str) -> dict[str, int]:
        """Devices by state in one campaign (one GROUP BY query)."""
        tag = self._tag(campaign_id)
        groups = self._fleet.queries.group_by(f"{tag}.state", f"IS_DEFINED({tag})")
        return {str(k): v for k, v in groups.items() if k is not None}

    def campaign_progress(self, campaign_id: str) -> CampaignProgress:
        """Record, counts, reasons and per-group progress (one configuration read and four
        queries).

        Raises:
            twin_manager.DeviceNotFound: no such campaign.
        """
        record = records.CampaignRecord.load(self._fleet, campaign_id)
        spec = record.spec
        tag = self._tag(campaign_id)
        progress = CampaignProgress(
            CampaignSummary(spec.id, spec.pattern.kind, str(record.status), spec.target),
            spec.model_dump(mode="json"),
            list(record.log_lines),
        )
        progress.counts = self.campaign_state_counts(campaign_id)
        failed = f"{tag}.state IN ['failed', 'timedout']"
        progress.reasons = {
            str(k): v for k, v in self._fleet.queries.group_by(f"{tag}.reason", failed).items() if k
        }
        finished = ", ".join(queries.quote(s) for s in FINISHED_STATES)
        progress.group_totals = {
            str(k): v
            for k, v in self._fleet.queries.group_by(f"{tag}.group", f"IS_DEFINED({tag})").items()
            if k is not None
        }
        progress.group_finished = {
            str(k): v
            for k, v in self._fleet.queries.group_by(
                f"{tag}.group", f"{tag}.state IN [{finished}]"
            ).items()
            if k is not None
        }
        return progress

    def campaign_plan(self, campaign_id: str) -> Plan:
        """The dry-run plan of the campaign's target now (one query per 1,000 devices)."""
        record = records.CampaignRecord.load(self._fleet, campaign_id)
        return plan(self._fleet, record.spec)

    def steer(self, campaign_id: str, action: str) -> str:
        """Pause, resume, cancel or abort a campaign; returns its status after.

        Raises:
            ValueError: an unknown action.
        """
        if action not in STEERING:
            raise ValueError(f"unknown campaign action {action!r}; use one of {STEERING}")
        campaign = Campaign.load(self._fleet, campaign_id)
        if action == "pause":
            campaign.pause()
        elif action == "resume":
            campaign.resume()
        elif action == "cancel":
            campaign.cancel()
        else:
            campaign.abort("aborted by the operator from the dashboard")
        log.info("campaign %s: %s from the dashboard", campaign_id, action)
        return campaign.record.status

    # -- jobs ---------------------------------------------------------------------------------

    def jobs(self) -> list[Job]:
        return sorted(
            self._fleet.jobs.list(),
            key=lambda j: j.created_time.timestamp() if j.created_time else 0.0,
            reverse=True,
        )

    def job(self, job_id: str) -> Job:
        return self._fleet.jobs.get(job_id)

    def job_results(self, job_id: str) -> list[DeviceJobResult]:
        """Per-device results (one query per 1,000 devices)."""
        return self._fleet.jobs.results(job_id)
