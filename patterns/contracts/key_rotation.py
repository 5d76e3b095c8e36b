"""The `rotateKey` direct method and what the device reports in `reported.keyRotation`.

The new key travels only in the method's payload, never in the twin (which every service with
registry read can see). The device reports the *fingerprint* of the key it is connected with
(`fingerprint`: the first 16 hex digits of the SHA-256 of the key's bytes, never the key), when
it started using it, and how the last rotation request went; the back end compares fingerprints
with the identity's keys to know which key the device holds.

`KeyRotationRequest.key` is a `SecretStr`: its repr, `str()` and validation errors never show
it; only `wire()` (the payload sent to the device) holds it in clear.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
)

__all__ = [
    "METHOD",
    "SECTION",
    "KeyRotationReported",
    "KeyRotationRequest",
    "KeyRotationStatus",
    "fingerprint",
]

METHOD = "rotateKey"
SECTION = "keyRotation"


def fingerprint(key: str) -> str:
    """What identifies a base64 symmetric key without revealing it: 16 hex digits of the
    SHA-256 of its bytes (of its text, should it not be base64)."""
    try:
        data = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        data = key.encode()
    return hashlib.sha256(data).hexdigest()[:16]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", hide_input_in_errors=True)

    def wire(self) -> dict[str, Any]:
        """The JSON on the wire (camelCase; fields not set are left out)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class KeyRotationRequest(_Model):
    """The method's payload: the device's new key and the attempt it answers (`campaignId`)."""

    key: SecretStr
    campaign_id: str | None = Field(default=None, alias="campaignId", max_length=256)

    @field_validator("key")
    @classmethod
    def _symmetric_key(cls, value: SecretStr) -> SecretStr:
        try:
            size = len(base64.b64decode(value.get_secret_value(), validate=True))
        except (binascii.Error, ValueError):
            size = 0
        if not 16 <= size <= 64:
            raise ValueError("key must be a base64 symmetric key of 16 to 64 bytes, as IoT Hub's")
        return value

    @field_serializer("key")
    def _reveal(self, value: SecretStr) -> str:
        return value.get_secret_value()


class KeyRotationStatus(enum.StrEnum):
    PENDING = "pending"  # the new key is saved; the device is connecting with it
    ROTATED = "rotated"  # the hub accepted the new key; the device uses it
    REFUSED = "refused"  # the hub refused the new key; the device went back to its previous key
    ERROR = "error"  # the device could not save the new key; it keeps its key


class KeyRotationReported(_Model):
    """reported.keyRotation: the key in use, and the last rotation request's outcome."""

    fingerprint: str
    since: str | None = None  # when the device started using that key (ISO-8601 UTC)
    status: KeyRotationStatus | None = None
    requested_fingerprint: str | None = Field(default=None, alias="requestedFingerprint")
    campaign_id: str | None = Field(default=None, alias="campaignId")
    error: str | None = None
