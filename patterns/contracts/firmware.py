"""The firmware section of the twin, after Azure IoT Hub's firmware-update tutorial.

Images may be signed (as Mender, RAUC and AWS IoT code signing do): `fwPackageSignature` is an
Ed25519 signature, base64, over `signed_statement(...)`, which binds the version, the image's
SHA-256 and the optional `fwSecurityFloor` together, so a signed old image cannot be relabelled
as a new version and a floor cannot be lowered by whoever can write desired properties. The
signature is made once per image, where the image is built (`twinfleet firmware sign`), and
travels with it; nothing that writes desired state signs anything.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SECTION",
    "FirmwareDesired",
    "FirmwareReported",
    "FirmwareStatus",
    "signed_statement",
]

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
    signature: str | None = Field(default=None, alias="fwPackageSignature", max_length=200)
    security_floor: str | None = Field(default=None, alias="fwSecurityFloor", min_length=1)

    def statement(self) -> bytes:
        """What `fwPackageSignature` signs for this section."""
        return signed_statement(self.version, self.check_value, self.security_floor)

    def wire(self) -> dict[str, object]:
        """The JSON the back end writes (camelCase; fields not given are left out)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)

    def patch(self) -> dict[str, object]:
        """The merge patch that makes desired.firmware this section exactly: every field, those
        not given as null, so nothing of an earlier image (its signature, security floor or
        size) is left to be read with this one."""
        return self.model_dump(by_alias=True, mode="json")


def signed_statement(version: str, sha256: str, security_floor: str | None = None) -> bytes:
    """The bytes an image signature covers: version, image digest and security floor.

    Args:
        version: the image's firmware version (`fwVersion`).
        sha256: the image's SHA-256, hex (`fwPackageCheckValue`; case does not matter).
        security_floor: the lowest version a device may ever run once it installed this image
            (`fwSecurityFloor`), or None.
    """
    return (
        "twinfleet firmware signature v1\n"
        f"version: {version}\nsha256: {sha256.lower()}\nsecurity-floor: {security_floor or ''}\n"
    ).encode()


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
