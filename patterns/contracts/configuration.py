"""The configuration section: a versioned bag of settings."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SECTION", "ConfigurationDesired", "ConfigurationReported", "ConfigurationStatus"]

SECTION = "configuration"


class ConfigurationStatus(enum.StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    ERROR = "error"


class ConfigurationDesired(BaseModel):
    """desired.configuration: `version` counts changes; every other key is a setting."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    version: int = Field(ge=0)

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ConfigurationReported(BaseModel):
    """reported.configuration: which version the device applied, and how."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    version: int
    status: ConfigurationStatus
    error: str | None = None
    settings: dict[str, Any] | None = None

    def wire(self) -> dict[str, object]:
        return self.model_dump(mode="json")
