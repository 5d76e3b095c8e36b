"""The firmware section of the twin, after Azure IoT Hub's firmware-update tutorial."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SECTION", "FirmwareDesired", "FirmwareReported", "FirmwareStatus"]

SECTION = "firmware"


class FirmwareStatus(enum.StrEnum):
    """`fwUpdateStatus`: where a device stands in an update."""

    CURRENT = "current"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    APPLYING = "applying"
    REBOOTING = "rebooting"
    ERROR = "error"
    ROLLEDBACK = "rolledback"


class _Section(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class FirmwareDesired(_Section):
    """desired.firmware: the image the back end wants the device to run."""

    version: str = Field(alias="fwVersion", min_length=1)
    package_uri: str = Field(alias="fwPackageURI", min_length=1)
    check_value: str = Field(alias="fwPackageCheckValue", pattern=r"^[0-9a-fA-F]{64}$")
    package_size: int | None = Field(default=None, alias="fwPackageSize", ge=0)
    campaign_id: str | None = Field(default=None, alias="campaignId")
    force: bool = False

    def wire(self) -> dict[str, object]:
        """The JSON the back end writes (camelCase; fields not given are left out)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class FirmwareReported(_Section):
    """reported.firmware: what the device runs and how its last update went."""

    current_version: str = Field(alias="currentFwVersion")
    pending_version: str = Field(default="", alias="pendingFwVersion")
    status: FirmwareStatus = Field(default=FirmwareStatus.CURRENT, alias="fwUpdateStatus")
    substatus: str = Field(default="", alias="fwUpdateSubstatus")
    last_start_time: str | None = Field(default=None, alias="lastFwUpdateStartTime")
    last_end_time: str | None = Field(default=None, alias="lastFwUpdateEndTime")
    campaign_id: str | None = Field(default=None, alias="campaignId")

    def wire(self) -> dict[str, object]:
        """The JSON the device reports (camelCase, nulls kept to clear old values)."""
        return self.model_dump(by_alias=True, mode="json")
