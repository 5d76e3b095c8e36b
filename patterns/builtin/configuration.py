"""Configuration change: set desired `configuration` to settings under a new version; done
when the device reports that version applied for this attempt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from patterns import api
from patterns.contracts import configuration

__all__ = ["PATTERN", "ConfigurationChange", "ConfigurationChangePattern"]


class ConfigurationChange(api.Params):
    """A configuration campaign's parameters."""

    kind: Literal["configuration"] = "configuration"
    version: int = Field(ge=1)
    settings: dict[str, Any]

    @classmethod
    def like_device(cls, reported: Mapping[str, Any], version: int) -> ConfigurationChange:
        """The settings a device reports having applied ("make the fleet look like this one").

        Raises:
            ValueError: the device reports no applied configuration settings.
        """
        try:
            applied = configuration.ConfigurationReported.model_validate(
                reported.get(configuration.SECTION)
            )
        except ValidationError:
            applied = None
        if (
            applied is None
            or applied.status != configuration.ConfigurationStatus.APPLIED
            or applied.settings is None
        ):
            raise ValueError("that device reports no applied configuration to copy")
        return cls(version=version, settings=applied.settings)


class ConfigurationChangePattern:
    kind = "configuration"
    params = ConfigurationChange
    description = "Apply a versioned set of settings."

    def apply(self, params: ConfigurationChange, device: api.Device) -> api.Verdict:
        section = configuration.ConfigurationDesired.of(
            params.version, params.settings, device.attempt.tag
        )
        device.fleet.update_desired(device.device_id, {configuration.SECTION: section.wire()})
        return api.Verdict.in_progress()

    def outcome(self, params: ConfigurationChange, device: api.Device) -> api.Verdict:
        try:
            reported = configuration.ConfigurationReported.model_validate(
                device.reported.get(configuration.SECTION)
            )
        except ValidationError:
            return api.Verdict.in_progress()
        if reported.campaign_id != device.attempt.tag or reported.version != params.version:
            return api.Verdict.in_progress()
        if reported.status == configuration.ConfigurationStatus.APPLIED:
            return api.Verdict.succeeded()
        if reported.status == configuration.ConfigurationStatus.ERROR:
            return api.Verdict.failed(f"configuration error: {reported.error}")
        return api.Verdict.in_progress()

    def rollback(self, params: ConfigurationChange) -> None:
        return None


PATTERN = ConfigurationChangePattern()
