"""Diagnostics upload end to end: a campaign hands each device a signed write URL by a direct
method (never through the twin); the real agent packs its state and logs and uploads them with a
plain PUT; the back end lists and downloads the bundles. The hub, TLS and SDKs are real."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from device_agent.handlers import DiagnosticsHandler
from local_hub import LocalHub
from patterns.builtin import DiagnosticsUpload, diagnostics
from patterns.campaigns import Campaign, CampaignSpec, Rollout
from twin_manager import TwinManager


def _drive(campaign: Campaign, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while (status := campaign.tick()).status != "completed":
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


def test_devices_upload_bundles_the_back_end_lists_and_downloads(
    hub: LocalHub, fleet: TwinManager, devices: Any, agents: Any, tmp_path: Path
) -> None:
    ids = devices(2)
    logs = tmp_path / "var-log"
    logs.mkdir()
    (logs / "agent.log").write_text("booted\nall well\n")
    agents(ids, handlers=[DiagnosticsHandler(log_paths=[logs], ca_file=hub.ca_certificate_path)])
    deadline = time.monotonic() + 60
    while fleet.queries.count("connectionState = 'Connected'") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    fleet.twins.update_desired(ids[0], {"configuration": {"version": 4, "mode": "eco"}})
    spec = CampaignSpec(id="diag", target="tags.kind = 'sensor'", rollout=Rollout(per_minute=600),
                        pattern=DiagnosticsUpload())  # fmt: skip
    assert _drive(Campaign.create(fleet, spec)).counts == {"succeeded": 2}

    bundles = {a.name: a for a in diagnostics.uploads(fleet)}
    assert sorted(bundles) == [f"diagnostics-{d}-diag_1.tar.gz" for d in ids]
    name = f"diagnostics-{ids[0]}-diag_1.tar.gz"
    reported = fleet.twins.get(ids[0]).reported["diagnostics"]
    assert (reported["blobName"], reported["size"], reported["sha256"]) == (
        name,
        bundles[name].size,
        bundles[name].sha256,
    )
    assert "uploadUrl" not in json.dumps(fleet.twins.get(ids[0]).desired)  # the URL never in twin
    fetched = diagnostics.download(fleet, name, tmp_path / "bundle.tar.gz")
    data = (tmp_path / "bundle.tar.gz").read_bytes()
    assert fetched.sha256 == hashlib.sha256(data).hexdigest() == reported["sha256"]
    with tarfile.open(tmp_path / "bundle.tar.gz") as tar:
        members = set(tar.getnames())
        assert {"summary.json", "logs/var-log/agent.log", "state/configuration.json"} <= members
        assert json.load(tar.extractfile("summary.json"))["firmware"] == "1.0.0"  # type: ignore[arg-type]


def test_a_signed_upload_url_writes_one_name_only_and_needs_the_blob_header(
    hub: LocalHub, fleet: TwinManager
) -> None:
    store = fleet.artifact_store()
    url = store.upload_url("diagnostics-x.tar.gz", ttl=60)
    put = {"verify": hub.ca_certificate_path, "timeout": 30}
    missing = requests.put(url, data=b"abc", **put)  # type: ignore[arg-type]
    assert missing.status_code == 400
    assert "x-ms-blob-type" in missing.text
    blob = {"x-ms-blob-type": "BlockBlob"}
    assert requests.put(url, data=b"abc", headers=blob, **put).status_code == 201  # type: ignore[arg-type]
    other = url.replace("diagnostics-x.tar.gz", "firmware.bin")
    assert requests.put(other, data=b"evil", headers=blob, **put).status_code == 401  # type: ignore[arg-type]
    as_download = url.replace("&sp=w", "")
    assert requests.get(as_download, **put).status_code == 401  # type: ignore[arg-type]
    assert [(a.name, a.size) for a in store.list()] == [("diagnostics-x.tar.gz", 3)]
    assert "sig=" not in url.split("?")[0]


def test_an_upload_that_fails_is_reported_failed(
    hub: LocalHub, fleet: TwinManager, devices: Any, agents: Any
) -> None:
    ids = devices(1)
    agents(ids, handlers=[DiagnosticsHandler(ca_file=None)])  # does not trust the hub's CA
    deadline = time.monotonic() + 60
    while fleet.queries.count("connectionState = 'Connected'") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    spec = CampaignSpec(id="diagfail", target="tags.kind = 'sensor'",
                        rollout=Rollout(per_minute=600), pattern=DiagnosticsUpload())  # fmt: skip
    status = _drive(Campaign.create(fleet, spec))
    assert status.counts == {"failed": 1}
    (reason,) = status.reasons
    assert reason.startswith("diagnostics upload failed: URLError")
    assert "sig=" not in reason
    with pytest.raises(ValueError, match="greater than or equal to 60"):
        DiagnosticsUpload(ttl_seconds=1)
