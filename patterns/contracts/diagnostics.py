"""The `uploadDiagnostics` direct method and what the device reports after it.

The upload URL is a signed, time-limited write URL (a Blob SAS URL on Azure, the local hub's
signed artifact URL locally). It is a secret, so it travels only in the method's payload, never
in the twin, which every service with registry read can see.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["METHOD", "SECTION", "DiagnosticsReported", "DiagnosticsRequest", "DiagnosticsStatus"]

METHOD = "uploadDiagnostics"
SECTION = "diagnostics"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


class DiagnosticsRequest(_Model):
    """The method's payload: where to `PUT` the bundle, and under which name."""

    upload_url: str = Field(alias="uploadUrl", min_length=1)
    blob_name: str = Field(alias="blobName", min_length=1)
    campaign_id: str | None = Field(default=None, alias="campaignId")


class DiagnosticsStatus(enum.StrEnum):
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    ERROR = "error"


class DiagnosticsReported(_Model):
    """reported.diagnostics: the last bundle the device uploaded (or why it could not)."""

    status: DiagnosticsStatus
    blob_name: str = Field(alias="blobName")
    size: int | None = None
    sha256: str | None = None
    uploaded_at: str | None = Field(default=None, alias="uploadedAt")
    error: str | None = None
    campaign_id: str | None = Field(default=None, alias="campaignId")
