"""Configuration change: set desired `configuration` to settings under a new version; done
when the device reports that version applied for this attempt.

The settings *replace* the device's desired ones: a key they lack is removed (sent as null,
computed against the section as read and written with the twin's etag), so the device ends up
with exactly these settings. With `merge`, they are merged into the desired ones instead (a key
they lack is kept; a null value removes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from patterns import api
from patterns.contracts import configuration, patches
from twin_manager import PreconditionFailed

__all__ = ["PATTERN", "ConfigurationChange", "ConfigurationChangePattern"]


class ConfigurationChange(api.Params):
    """A configuration campaign's parameters."""

    kind: Literal["configuration"] = "configuration"
    version: int = Field(ge=1)
    settings: dict[str, Any]
    merge: bool = False

    @field_validator("settings")
    @classmethod
    def _no_reserved_key(cls, value: dict[str, Any]) -> dict[str, Any]:
        names = {"version": "version", "campaignId": "campaign attempt"}
        for reserved, meaning in names.items():
            if reserved in value:
                raise ValueError(f"{reserved!r} names the configuration's {meaning}; "
                                 "rename that setting")  # fmt: skip
        return value

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


_RESERVED = ("version", "campaignId")  # the section's own fields, never settings


class ConfigurationChangePattern:
    kind = "configuration"
    params = ConfigurationChange
    description = "Apply a versioned set of settings."

    def apply(self, params: ConfigurationChange, device: api.Device) -> api.Verdict:
        fleet = device.fleet
        if params.merge:
            fleet.twins.update_desired(device.device_id, self.desired(params, device))
            return api.Verdict.in_progress()
        for attempt in range(5):
            twin = fleet.twins.get(device.device_id)
            fresh = api.Device(fleet, device.device_id, device.attempt, twin.reported, twin.desired)
            try:
                fleet.twins.update_desired(device.device_id, self.desired(params, fresh),
                                           if_match=twin.etag or "*")  # fmt: skip
            except PreconditionFailed:
                if attempt == 4:
                    raise
                continue
            break
        return api.Verdict.in_progress()

    def desired(self, params: ConfigurationChange, device: api.Device) -> dict[str, Any]:
        """The section to write. Settings that replace the device's clear those left out of
        the twin as `device` holds it: the controller writes this beside its claim, guarded by
        that twin's etag, so a twin changed since is read again, never overwritten."""
        tag = device.attempt.tag
        if params.merge:
            section = configuration.ConfigurationDesired.of(params.version, params.settings, tag)
            return {configuration.SECTION: section.wire()}
        current = device.desired.get(configuration.SECTION)
        before = {k: v for k, v in (current or {}).items() if k not in _RESERVED}
        patch = patches.replacement(before, params.settings)
        return {configuration.SECTION: {**patch, "version": params.version, "campaignId": tag}}

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
