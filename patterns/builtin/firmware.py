"""Firmware update: set desired `firmware`; done when the device runs the version.

The device echoes the attempt's tag in reported `campaignId`, so an error or a roll-back is
counted against the attempt that caused it; running the version is success whoever asked.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from patterns import api
from patterns.contracts import firmware

__all__ = ["PATTERN", "FirmwareUpdate", "FirmwareUpdatePattern"]

_LEGACY = {"url": "package_uri", "sha256": "check_value", "size": "package_size"}


class FirmwareUpdate(api.Params):
    """A firmware campaign's parameters, spelled as `FirmwareDesired` spells them."""

    kind: Literal["firmware"] = "firmware"
    version: str = Field(min_length=1)
    package_uri: str = Field(min_length=1)
    check_value: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    package_size: int | None = Field(default=None, ge=0)
    # Made where the image was built (`twinfleet firmware sign`); the campaign only carries it.
    signature: str | None = Field(default=None, max_length=200)
    security_floor: str | None = Field(default=None, min_length=1)
    rollback_to: FirmwareUpdate | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_names(cls, data: Any) -> Any:
        """Specs stored before 0.2 spelled the image `url`, `sha256` and `size`."""
        if isinstance(data, dict) and _LEGACY.keys() & data.keys():
            return {_LEGACY.get(k, k): v for k, v in data.items()}
        return data

    def desired(self, campaign_id: str | None) -> firmware.FirmwareDesired:
        return firmware.FirmwareDesired(
            version=self.version, package_uri=self.package_uri, check_value=self.check_value,
            package_size=self.package_size, campaign_id=campaign_id,
            signature=self.signature, security_floor=self.security_floor,
        )  # fmt: skip


class FirmwareUpdatePattern:
    kind = "firmware"
    params = FirmwareUpdate
    description = "Install a firmware image (A/B, rolled back if it fails to boot)."

    def apply(self, params: FirmwareUpdate, device: api.Device) -> api.Verdict:
        device.fleet.twins.update_desired(device.device_id, self.desired(params, device))
        return api.Verdict.in_progress()

    def desired(self, params: FirmwareUpdate, device: api.Device) -> dict[str, Any]:
        # the whole section: a merge patch of only the fields given would keep an earlier
        # image's signature, floor or size beside this image's version and checksum
        return {firmware.SECTION: params.desired(device.attempt.tag).patch()}

    def outcome(self, params: FirmwareUpdate, device: api.Device) -> api.Verdict:
        try:
            reported = firmware.FirmwareReported.model_validate(
                device.reported.get(firmware.SECTION)
            )
        except ValidationError:
            return api.Verdict.in_progress()
        if (
            reported.current_version == params.version
            and reported.status == firmware.FirmwareStatus.CURRENT
        ):
            return api.Verdict.succeeded()
        failed = (firmware.FirmwareStatus.ERROR, firmware.FirmwareStatus.ROLLEDBACK)
        if reported.campaign_id == device.attempt.tag and reported.status in failed:
            return api.Verdict.failed(f"{reported.status}: {reported.substatus}")
        return api.Verdict.in_progress()

    def rollback(self, params: FirmwareUpdate) -> FirmwareUpdate | None:
        return params.rollback_to


PATTERN = FirmwareUpdatePattern()
