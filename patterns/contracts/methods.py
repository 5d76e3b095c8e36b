"""The reboot and factory-reset direct methods and what the device reports after them."""

from __future__ import annotations

import enum

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


class RebootPayload(_Model):
    """The `reboot` method's payload: seconds to wait after answering."""

    delay: float = Field(default=0, ge=0, le=3600)


class RebootReported(_Model):
    """reported.reboot."""

    last_reboot: str = Field(alias="lastReboot")


class FactoryResetPayload(_Model):
    delay: float = Field(default=0, ge=0, le=3600)


class FactoryResetStatus(enum.StrEnum):
    IN_PROGRESS = "inProgress"
    COMPLETED = "completed"
    FAILED = "failed"


class FactoryResetReported(_Model):
    """reported.factoryReset."""

    status: FactoryResetStatus
    last_factory_reset: str | None = Field(default=None, alias="lastFactoryReset")
