"""What a campaign is: its pattern, target, rollout, groups, safety limits. Pure data.

A campaign's spec is stored in the hub (see `records.py`), so it is plain JSON-able pydantic.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from patterns.campaigns import windows

__all__ = [
    "AbortCriteria",
    "CampaignSpec",
    "ConfigurationChange",
    "FactoryReset",
    "FirmwareUpdate",
    "Group",
    "HealthGate",
    "PatternSpec",
    "Reboot",
    "Retries",
    "Rollout",
    "Window",
]

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FirmwareUpdate(_Spec):
    """Set desired `firmware`; done when the device runs `version` (status `current`)."""

    kind: Literal["firmware"] = "firmware"
    version: str
    url: str
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    size: int | None = None
    # Made where the image was built (`twinfleet firmware sign`); the campaign only carries it.
    signature: str | None = None
    security_floor: str | None = None
    rollback_to: FirmwareUpdate | None = None


class ConfigurationChange(_Spec):
    """Set desired `configuration` to `settings` under a new `version`."""

    kind: Literal["configuration"] = "configuration"
    version: int = Field(ge=1)
    settings: dict[str, Any]

    @classmethod
    def like_device(cls, reported: dict[str, Any], version: int) -> ConfigurationChange:
        """The settings a device reports having applied ("make the fleet look like this one").

        Raises:
            ValueError: the device reports no applied configuration settings.
        """
        configuration = reported.get("configuration") or {}
        settings = configuration.get("settings")
        if configuration.get("status") != "applied" or not isinstance(settings, dict):
            raise ValueError("that device reports no applied configuration to copy")
        return cls(version=version, settings=settings)


class Reboot(_Spec):
    """Call the `reboot` direct method."""

    kind: Literal["reboot"] = "reboot"
    delay: float = Field(default=0, ge=0)


class FactoryReset(_Spec):
    """Call the `factoryReset` direct method; done when the device reports it completed."""

    kind: Literal["factoryReset"] = "factoryReset"


PatternSpec = Annotated[
    FirmwareUpdate | ConfigurationChange | Reboot | FactoryReset, Field(discriminator="kind")
]


class Rollout(_Spec):
    """How fast devices are admitted: a fixed rate, or an exponential ramp."""

    per_minute: float = Field(default=60, gt=0)
    ramp_factor: float = Field(default=1.0, ge=1.0)
    ramp_after: int = Field(default=10, ge=1)
    max_per_minute: float | None = None

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
    pattern: PatternSpec
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
    steps: tuple[PatternSpec, ...] = ()
    window: Window | None = None
    trigger: Literal["now", "on_connect"] = "now"

    @property
    def all_steps(self) -> tuple[FirmwareUpdate | ConfigurationChange | Reboot | FactoryReset, ...]:
        """The pattern, then the extra steps, in the order each device goes through them."""
        return (self.pattern, *self.steps)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(
                "use a letter, then up to 47 letters, digits or underscores (it names a tag)"
            )
        return value
