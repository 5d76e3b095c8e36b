"""The reboot and factory-reset direct methods and what the device reports after them.

A payload may carry `campaignId`, which the device echoes in what it reports, so the back end
reads the outcome of its own attempt and never one left over from an earlier call.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FACTORY_RESET",
    "REBOOT",
    "FactoryResetPayload",
    "FactoryResetReported",
    "FactoryResetStatus",
    "RebootPayload",
    "RebootReported",
]

REBOOT = "reboot"
FACTORY_RESET = "factoryReset"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        """The JSON on the wire (camelCase; fields not set are left out)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class RebootPayload(_Model):
    """The `reboot` method's payload: seconds to wait after answering."""

    delay: float = Field(default=0, ge=0, le=3600)
    campaign_id: str | None = Field(default=None, alias="campaignId")


class RebootReported(_Model):
    """reported.reboot."""

    last_reboot: str = Field(alias="lastReboot")
    campaign_id: str | None = Field(default=None, alias="campaignId")


class FactoryResetPayload(_Model):
    delay: float = Field(default=0, ge=0, le=3600)
    campaign_id: str | None = Field(default=None, alias="campaignId")


class FactoryResetStatus(enum.StrEnum):
    IN_PROGRESS = "inProgress"
    COMPLETED = "completed"
    FAILED = "failed"


class FactoryResetReported(_Model):
    """reported.factoryReset."""

    status: FactoryResetStatus
    last_factory_reset: str | None = Field(default=None, alias="lastFactoryReset")
    campaign_id: str | None = Field(default=None, alias="campaignId")
    error: str | None = None
