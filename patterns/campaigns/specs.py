"""What a campaign is: its pattern, target, rollout, groups, safety limits. Pure data.

A campaign's spec is stored in the hub (see `records.py`), so it is plain JSON-able pydantic.
Its pattern (and each extra step) is any installed pattern's `Params`, read back by `kind`
through the pattern registry (`patterns.api`); the built-ins' are re-exported here.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from patterns import api
from patterns.builtin import ConfigurationChange, FactoryReset, FirmwareUpdate, Reboot
from patterns.campaigns import windows

__all__ = [
    "AbortCriteria",
    "CampaignSpec",
    "ConfigurationChange",
    "FactoryReset",
    "FirmwareUpdate",
    "Group",
    "HealthGate",
    "Reboot",
    "Retries",
    "Rollout",
    "Window",
]

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rollout(_Spec):
    """How fast devices are admitted: a fixed rate, or an exponential ramp; `burst` is the most
    admitted at once (by default ten seconds' worth of the rate, at least one)."""

    per_minute: float = Field(default=60, gt=0)
    ramp_factor: float = Field(default=1.0, ge=1.0)
    ramp_after: int = Field(default=10, ge=1)
    max_per_minute: float | None = None
    burst: int | None = Field(default=None, ge=1)

    def capacity(self, rate: float) -> float:
        """The rate limiter's capacity at `rate` devices per minute."""
        return float(self.burst) if self.burst is not None else max(1.0, rate / 6)

    def rate(self, succeeded: int) -> float:
        """Devices per minute once `succeeded` devices succeeded."""
        rate = self.per_minute * self.ramp_factor ** (succeeded // self.ramp_after)
        return min(rate, self.max_per_minute) if self.max_per_minute else rate


class Group(_Spec):
    """An ordered wave: the next group starts only when this one is done and healthy."""

    name: str
    condition: str
    success_threshold: float = Field(default=1.0, ge=0, le=1)
    error_threshold: float = Field(default=1.0, ge=0, le=1)


class AbortCriteria(_Spec):
    """Abort when at least `failure_percent` of at least `min_finished` finished devices failed."""

    failure_percent: float = Field(default=50, gt=0, le=100)
    min_finished: int = Field(default=5, ge=1)
    rollback: bool = False


class HealthGate(_Spec):
    """Pause or abort when too many updated devices match a condition over reported state."""

    condition: str
    max_fraction: float = Field(ge=0, le=1)
    min_devices: int = Field(default=1, ge=1)
    action: Literal["pause", "abort"] = "pause"


class Window(_Spec):
    """A maintenance window: opens when `cron` fires (UTC), stays open `duration_minutes`."""

    cron: str
    duration_minutes: float = Field(gt=0, le=7 * 24 * 60)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        windows.in_window(value, 1, 0)  # raises CronError, a ValueError, naming the field
        return value


class Retries(_Spec):
    """Retry failed or timed-out devices, with exponential backoff."""

    max_attempts: int = Field(default=1, ge=1)
    backoff_seconds: float = Field(default=30, ge=0)


class CampaignSpec(_Spec):
    """A whole campaign."""

    id: str
    pattern: SerializeAsAny[api.Params]
    target: str
    mode: Literal["snapshot", "continuous"] = "snapshot"
    rollout: Rollout = Rollout()
    groups: tuple[Group, ...] = ()
    abort: AbortCriteria | None = None
    health_gates: tuple[HealthGate, ...] = ()
    timeout_seconds: float = Field(default=600, gt=0)
    retries: Retries = Retries()
    start_at: float | None = None
    end_at: float | None = None
    steps: tuple[SerializeAsAny[api.Params], ...] = ()
    window: Window | None = None
    trigger: Literal["now", "on_connect"] = "now"

    @property
    def all_steps(self) -> tuple[api.Params, ...]:
        """The pattern, then the extra steps, in the order each device goes through them."""
        return (self.pattern, *self.steps)

    @field_validator("pattern", mode="before")
    @classmethod
    def _pattern(cls, value: Any) -> api.Params:
        return api.registry().parse(value)

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> tuple[api.Params, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError("steps is a list of patterns")
        return tuple(api.registry().parse(step) for step in value)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                "use a letter, then up to 47 letters, digits or underscores (it names a tag)"
            )
        return value
