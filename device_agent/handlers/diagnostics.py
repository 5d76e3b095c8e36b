"""The `uploadDiagnostics` method: pack logs and configuration, `PUT` them to the signed URL the
back end sent, report the bundle's name, size and SHA-256.

The bundle (a .tar.gz) holds the agent's JSON state files (its configuration and firmware
state, never a key or an image) and the log files the device names (`log_paths`), plus a
`summary.json` (firmware version, time). The upload is a plain HTTP `PUT` with
`x-ms-blob-type: BlockBlob`, which Azure Blob Storage accepts from a SAS URL as the local hub
does from its signed URL. The URL is a secret: it is never logged or reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import ssl
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from device_agent.handlers import api
from patterns.contracts import diagnostics, times

__all__ = ["DiagnosticsHandler"]

log = logging.getLogger(__name__)

_MAX_FILE = 16 * 1024 * 1024


class DiagnosticsHandler:
    """Args:
    log_paths: log files (or folders of them) to include.
    ca_file: a CA file to trust for the https upload URL (the local hub's).
    timeout: seconds the upload may take.
    """

    kind = "diagnostics"
    method = diagnostics.METHOD

    def __init__(self, *, log_paths: Sequence[Path] = (), ca_file: str | None = None,
                 timeout: float = 120) -> None:  # fmt: skip
        self.log_paths = [Path(p) for p in log_paths]
        self.ca_file = ca_file
        self.timeout = timeout

    async def invoke(self, call: api.Invocation, agent: api.Agent) -> None:
        try:
            request = diagnostics.DiagnosticsRequest.model_validate(call.payload or {})
        except ValidationError as exc:
            await call.answer(400, {"error": str(exc.errors()[0]["msg"])})
            return
        await call.answer(200, {"accepted": True, "blobName": request.blob_name})
        report = diagnostics.DiagnosticsReported(
            status=diagnostics.DiagnosticsStatus.UPLOADING, blob_name=request.blob_name,
            campaign_id=request.campaign_id,
        )  # fmt: skip
        agent.report({diagnostics.SECTION: report.wire()})
        try:
            size, digest = await asyncio.to_thread(self._pack_and_upload, request, agent)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            log.warning(
                "diagnostics upload of %s failed: %s", request.blob_name, type(exc).__name__
            )
            report = report.model_copy(
                update={
                    "status": diagnostics.DiagnosticsStatus.ERROR,
                    "error": f"{type(exc).__name__}: {reason}"[:200],
                }
            )
        else:
            report = report.model_copy(
                update={
                    "status": diagnostics.DiagnosticsStatus.UPLOADED,
                    "size": size,
                    "sha256": digest,
                    "uploaded_at": times.iso_now(),
                }
            )
        agent.report({diagnostics.SECTION: report.wire()})

    def _files(self, agent: api.Agent) -> list[tuple[Path, str]]:
        found = [(p, f"state/{p.name}") for p in sorted(agent.state_dir.glob("*.json"))]
        for path in self.log_paths:
            members = sorted(path.rglob("*")) if path.is_dir() else [path]
            found += [(m, f"logs/{m.relative_to(path.parent)}") for m in members if m.is_file()]
        return [(p, name) for p, name in found if p.stat().st_size <= _MAX_FILE]

    def _pack_and_upload(
        self, request: diagnostics.DiagnosticsRequest, agent: api.Agent
    ) -> tuple[int, str]:
        with tempfile.TemporaryFile() as bundle:
            with tarfile.open(fileobj=bundle, mode="w:gz") as tar:
                summary = json.dumps({"firmware": agent.platform.current_version(),
                                      "packedAt": times.iso_now()}).encode()  # fmt: skip
                info = tarfile.TarInfo("summary.json")
                info.size = len(summary)
                tar.addfile(info, io.BytesIO(summary))
                for path, name in self._files(agent):
                    tar.add(path, arcname=name, recursive=False)
            size = bundle.tell()
            bundle.seek(0)
            digest = hashlib.sha256()
            while chunk := bundle.read(256 * 1024):
                digest.update(chunk)
            bundle.seek(0)
            put = urllib.request.Request(
                request.upload_url, data=bundle, method="PUT",
                headers={"x-ms-blob-type": "BlockBlob", "Content-Length": str(size),
                         "Content-Type": "application/gzip"},
            )  # fmt: skip
            context = ssl.create_default_context(cafile=self.ca_file)
            try:
                with urllib.request.urlopen(put, timeout=self.timeout, context=context) as answer:
                    answer.read()
            except urllib.error.HTTPError as exc:
                # The URL (with its signature) is in exc.url: name only the status.
                raise ValueError(f"the upload was refused with HTTP {exc.code}") from None
        return size, digest.hexdigest()

    def __repr__(self) -> str:
        return f"DiagnosticsHandler(log_paths={self.log_paths!r})"
