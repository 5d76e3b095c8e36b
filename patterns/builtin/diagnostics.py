"""Diagnostics upload: the device packs its logs and configuration and uploads them to the hub's
artifact store (Blob Storage on Azure) through a signed, time-limited write URL that the back end
hands it in a direct method; done when the device reports the bundle and the store holds exactly
what it reported (name, size, SHA-256).

Written against `patterns.api` and the contract models alone, as a user's pattern would be.
`uploads` and `download` are how an operator gets the bundles back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from patterns import api
from patterns.contracts import diagnostics
from twin_manager import TwinManager, artifacts

__all__ = ["PATTERN", "PREFIX", "DiagnosticsUpload", "DiagnosticsUploadPattern", "uploads"]

PREFIX = "diagnostics-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class DiagnosticsUpload(api.Params):
    kind: Literal["diagnostics"] = "diagnostics"
    ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)


def blob_name(device: api.Device) -> str:
    """One bundle name per device and attempt (artifact names allow `A-Za-z0-9._-`)."""
    return _UNSAFE.sub("_", f"{PREFIX}{device.device_id}-{device.attempt.tag}") + ".tar.gz"


class DiagnosticsUploadPattern:
    kind = "diagnostics"
    params = DiagnosticsUpload
    description = "Collect devices' logs and configuration (uploaded through a signed URL)."

    def apply(self, params: DiagnosticsUpload, device: api.Device) -> api.Verdict:
        name = blob_name(device)
        url = device.fleet.artifact_store().upload_url(name, ttl=params.ttl_seconds)
        request = diagnostics.DiagnosticsRequest(
            upload_url=url, blob_name=name, campaign_id=device.attempt.tag
        )
        return api.invoke(device, diagnostics.METHOD, request.wire())

    def outcome(self, params: DiagnosticsUpload, device: api.Device) -> api.Verdict:
        try:
            reported = diagnostics.DiagnosticsReported.model_validate(
                device.reported.get(diagnostics.SECTION)
            )
        except ValidationError:
            return api.Verdict.in_progress()
        if reported.campaign_id != device.attempt.tag:
            return api.Verdict.in_progress()
        if reported.status == diagnostics.DiagnosticsStatus.ERROR:
            return api.Verdict.failed(f"diagnostics upload failed: {reported.error}")
        if reported.status != diagnostics.DiagnosticsStatus.UPLOADED:
            return api.Verdict.in_progress()
        stored = {a.name: a for a in device.fleet.artifact_store().list()}.get(reported.blob_name)
        if stored is None or (stored.size, stored.sha256) != (reported.size, reported.sha256):
            return api.Verdict.failed(
                f"the store does not hold the bundle {reported.blob_name} the device reported"
            )
        return api.Verdict.succeeded()

    def rollback(self, params: DiagnosticsUpload) -> None:
        return None


def uploads(fleet: TwinManager) -> list[artifacts.Artifact]:
    """Every diagnostics bundle in the hub's artifact store."""
    return [a for a in fleet.artifact_store().list() if a.name.startswith(PREFIX)]


def download(fleet: TwinManager, name: str, destination: Path) -> artifacts.Artifact:
    """Fetch one bundle to `destination`."""
    return fleet.artifact_store().download(name, destination)


PATTERN = DiagnosticsUploadPattern()
