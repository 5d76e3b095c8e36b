"""`twinfleet artifact ...` and `campaign create firmware --image` against a `hub serve` process:
the signed URL printed by one process is downloaded by devices of another, over real TLS."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from patterns.campaigns import Campaign
from twin_manager import TwinManager


def _twinfleet(hub_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "twinfleet", *args]
    if "TWINFLEET_CONNECTION_STRING" not in env:
        command += ["--hub-dir", str(hub_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False,
                          env={**os.environ, **env})  # fmt: skip


def _eventually(check: Callable[[], Any], timeout: float = 45) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)
    return value


def _get(url: str, ca_file: str) -> requests.Response:
    with requests.Session() as session:
        return session.get(url, verify=ca_file, timeout=30)


def test_artifact_upload_url_list_and_delete(hub_process: Any, tmp_path: Path) -> None:
    info = hub_process.start()
    hub_dir, ca_file = hub_process.data_dir, info["caCertificatePath"]
    image = tmp_path / "fw-2.0.0.bin"
    image.write_bytes(os.urandom(200_000))
    digest = hashlib.sha256(image.read_bytes()).hexdigest()

    uploaded = _twinfleet(hub_dir, "artifact", "upload", str(image), "--name", "fw2.bin",
                          "--ttl", "1h", "--json")  # fmt: skip
    assert uploaded.returncode == 0, uploaded.stderr
    facts = json.loads(uploaded.stdout)
    assert (facts["name"], facts["size"], facts["sha256"]) == ("fw2.bin", 200_000, digest)
    expires = datetime.fromisoformat(facts["expiresAt"])  # ISO-8601 UTC, as IoT Hub writes times
    assert 3500 < expires.timestamp() - time.time() <= 3600
    download = _get(facts["url"], ca_file)  # no key: the signature is the credential
    assert (download.status_code, download.content) == (200, image.read_bytes())

    # Through a connection string (a back end that is not on the hub's machine).
    env = {"TWINFLEET_CONNECTION_STRING": info["serviceConnectionString"],
           "REQUESTS_CA_BUNDLE": ca_file}  # fmt: skip
    listed = _twinfleet(hub_dir, "artifact", "list", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    assert [(a["name"], a["sha256"]) for a in json.loads(listed.stdout)] == [("fw2.bin", digest)]
    fresh = _twinfleet(hub_dir, "artifact", "url", "fw2.bin", "--ttl", "90s", **env)
    assert fresh.returncode == 0, fresh.stderr
    assert f"sha256:  {digest}" in fresh.stdout
    fresh_url = fresh.stdout.split("url:")[1].split()[0]
    assert fresh_url != facts["url"]
    assert _get(fresh_url, ca_file).content == image.read_bytes()

    deleted = _twinfleet(hub_dir, "artifact", "delete", "fw2.bin")
    assert deleted.returncode == 0, deleted.stderr
    assert _get(facts["url"], ca_file).status_code == 404
    missing = _twinfleet(hub_dir, "artifact", "url", "fw2.bin")
    assert missing.returncode == 1
    assert "No artifact named 'fw2.bin'" in missing.stderr
    bad_ttl = _twinfleet(hub_dir, "artifact", "upload", str(image), "--ttl", "7x")
    assert bad_ttl.returncode == 2
    assert "is not a duration" in bad_ttl.stderr
    bad_name = _twinfleet(hub_dir, "artifact", "upload", str(image), "--name", "../x")
    assert bad_name.returncode == 1
    assert "invalid" in bad_name.stderr
    assert "Traceback" not in bad_name.stderr + bad_ttl.stderr + missing.stderr


def test_a_firmware_campaign_from_an_image_file(hub_process: Any, tmp_path: Path) -> None:
    """Also `fleet simulate --fail-first-boot` and `--attempts` with `--backoff`: the first
    device's first boot of the image fails, it rolls back, and its retry a second later succeeds."""
    info = hub_process.start()
    hub_dir, ca_file = hub_process.data_dir, info["caCertificatePath"]
    fleet = TwinManager(info["serviceConnectionString"], ca_file=ca_file,
                        device_host_name=info["deviceHostName"],
                        gateway_host_name=info["gatewayHostName"])  # fmt: skip
    image = tmp_path / "fw-3.0.0.bin"
    image.write_bytes(b"firmware three" * 5000)
    simulate = subprocess.Popen(
        [sys.executable, "-m", "twinfleet", "fleet", "simulate", "--hub-dir", str(hub_dir),
         "--devices", "2", "--prefix", "img", "--state-root", str(tmp_path / "devices"),
         "--fail-first-boot", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        both = _twinfleet(
            hub_dir, "campaign", "create", "firmware", "fw3", "--version", "3.0.0",
            "--image", str(image), "--url", "https://x/y", "--target", "true",
        )  # fmt: skip
        assert both.returncode == 2
        assert "not both" in both.stderr
        created = _twinfleet(
            hub_dir, "campaign", "create", "firmware", "fw3", "--version", "3.0.0",
            "--image", str(image), "--target", "deviceId IN ['img-0000', 'img-0001']",
            "--rate", "600", "--timeout", "60", "--attempts", "2", "--backoff", "1",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert hashlib.sha256(image.read_bytes()).hexdigest() in created.stdout
        _eventually(
            lambda: (
                fleet.queries.count("properties.reported.firmware.currentFwVersion = '1.0.0'") == 2
            )
        )
        ran = _twinfleet(hub_dir, "campaign", "run", "fw3", "--poll", "0.3")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        for device_id in ("img-0000", "img-0001"):
            twin = fleet.twins.get(device_id)
            assert twin.reported["firmware"]["currentFwVersion"] == "3.0.0"
            assert twin.desired["firmware"]["fwPackageSize"] == image.stat().st_size
        assert [fleet.twins.get(d).tags["twinfleet"]["fw3"]["attempt"]
                for d in ("img-0000", "img-0001")] == [2, 1]  # fmt: skip
        log = "\n".join(Campaign.load(fleet, "fw3").status().log)
        assert "img-0000: attempt 1 failed (rolledback" in log
        assert "retry in 1 s" in log
    finally:
        simulate.send_signal(signal.SIGINT)
        try:
            assert simulate.wait(timeout=20) == 0
        finally:
            if simulate.poll() is None:
                simulate.kill()
                simulate.wait()
