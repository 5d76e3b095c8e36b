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
    """desired.configuration: `version` counts changes; `campaignId` (when a campaign set it)
    names the attempt, which the device echoes; every other key is a setting."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    version: int = Field(ge=0)
    campaign_id: str | None = Field(default=None, alias="campaignId")

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @classmethod
    def of(
        cls, version: int, settings: dict[str, Any], campaign_id: str | None = None
    ) -> ConfigurationDesired:
        """The section for `settings` under `version` (settings are the model's extra keys)."""
        if {"version", "campaignId"} & settings.keys():
            raise ValueError("settings may not be named 'version' or 'campaignId'")
        return cls.model_validate({"version": version, "campaignId": campaign_id, **settings})

    def wire(self) -> dict[str, Any]:
        """The JSON the back end writes (no `campaignId` key when none was given)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class ConfigurationReported(BaseModel):
    """reported.configuration: which version the device applied, and how."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    version: int
    status: ConfigurationStatus
    error: str | None = None
    settings: dict[str, Any] | None = None
    campaign_id: str | None = Field(default=None, alias="campaignId")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")
