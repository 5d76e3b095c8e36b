"""Where each device stands in a campaign: one typed tag per device, one shape.

A device's progress in campaign `c` is the twin tag `twinfleet.c`, always written whole (a merge
patch of every field, nulls included) from a `DeviceProgress`, so the tag never holds a mix of
two writes' fields. States are a `StrEnum` whose values are what the queries compare with.
Each tag also carries `tally`, its state and group in one string (`succeeded/canary`), so one
GROUP BY query counts a campaign's devices per group and state at once (see `tallies`).

`attempt` numbers every try on the device and is never reused, re-runs included: it is the
`Attempt.number` a pattern tags its desired state or payload with, so the outcome a device
reported for an earlier try can never be taken for the current one. `tries` counts the tries
of the current run, which `Retries.max_attempts` bounds; a re-run starts it again at zero.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from patterns import api
from patterns.contracts import times

__all__ = ["FINISHED", "IN_FLIGHT", "TAG", "CampaignState", "DeviceProgress", "DeviceState"]

TAG = "twinfleet"


class DeviceState(enum.StrEnum):
    QUEUED = "queued"
    ADMITTED = "admitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEDOUT = "timedout"
    CANCELLED = "cancelled"


IN_FLIGHT = (DeviceState.QUEUED, DeviceState.ADMITTED)
FINISHED = (DeviceState.SUCCEEDED, DeviceState.FAILED, DeviceState.TIMEDOUT)


class CampaignState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (CampaignState.COMPLETED, CampaignState.ABORTED, CampaignState.CANCELLED)


class DeviceProgress(BaseModel):
    """The tag `twinfleet.<campaign id>` of one device."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    state: DeviceState
    group: str = "all"
    step: int = Field(default=0, ge=0)
    attempt: int = Field(default=0, ge=0)
    tries: int = Field(default=0, ge=0)
    admitted_at: str | None = Field(default=None, alias="admittedAt")
    not_before: float | None = Field(default=None, alias="notBefore")
    reason: str | None = None

    @classmethod
    def of(cls, tags: dict[str, Any], campaign_id: str) -> DeviceProgress | None:
        """The progress a twin's tags hold for a campaign, if any."""
        data = (tags.get(TAG) or {}).get(campaign_id)
        return None if data is None else cls.model_validate(data)

    @property
    def tally(self) -> str:
        """The state and the group in one string: what the campaign's counts group by."""
        return f"{self.state}/{self.group}"

    def wire(self) -> dict[str, Any]:
        """The whole tag (nulls included, so a merge patch clears old values)."""
        return {**self.model_dump(by_alias=True, mode="json"), "tally": self.tally}

    def but(self, **changes: Any) -> DeviceProgress:
        """A copy with fields changed (validated)."""
        return DeviceProgress.model_validate({**self.model_dump(), **changes})

    def admitted_epoch(self) -> float:
        return times.parse_iso(self.admitted_at) if self.admitted_at else 0.0

    def attempt_of(self, step_id: str) -> api.Attempt:
        return api.Attempt(step_id, self.attempt, self.admitted_at or "")
