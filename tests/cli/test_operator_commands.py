"""The operator's commands through the real `twinfleet` entry point, against a local hub."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from azure.iot.device import IoTHubDeviceClient

from local_hub import LocalHub


def _twinfleet(hub: LocalHub, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "twinfleet", *args, "--hub-dir", str(hub.data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_devices_twins_queries_and_methods(hub: LocalHub) -> None:
    created = _twinfleet(hub, "device", "create", "cli-1")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"HostName={hub.device_host_name};DeviceId=cli-1;")
    assert _twinfleet(hub, "twin", "set-desired", "cli-1", '{"mode": "eco"}').returncode == 0
    assert _twinfleet(hub, "twin", "set-tags", "cli-1", '{"ring": "canary"}').returncode == 0
    twin = json.loads(_twinfleet(hub, "twin", "show", "cli-1").stdout)
    assert twin["deviceId"] == "cli-1"
    assert twin["tags"] == {"ring": "canary"}
    assert twin["properties"]["desired"]["mode"] == "eco"  # as IoT Hub shows a twin
    assert twin["properties"]["desired"]["$version"] == 2
    assert "mode" in twin["properties"]["desired"]["$metadata"]
    rows = _twinfleet(hub, "query", "SELECT * FROM devices WHERE tags.ring = 'canary'", "--json")
    assert [json.loads(line)["deviceId"] for line in rows.stdout.splitlines()] == ["cli-1"]
    assert "cli-1" in _twinfleet(hub, "device", "list").stdout

    bad = _twinfleet(hub, "query", "SELECT * FROM devices WHERE tags.ring = ")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: Expected an expression")
    assert bad.stderr.splitlines()[1:] == [
        "  SELECT * FROM devices WHERE tags.ring = ",
        "  " + " " * 40 + "^",  # at the end of the query, where the value is missing
    ]
    unquoted = _twinfleet(hub, "query", "SELECT * FROM devices WHERE tags.ring = canary")
    assert unquoted.returncode == 0
    assert "write the string as 'canary'" in unquoted.stderr
    assert unquoted.stderr.splitlines()[-3:-1] == [
        "  SELECT * FROM devices WHERE tags.ring = canary",
        "                                          ^",
    ]
    offline = _twinfleet(hub, "invoke", "cli-1", "reboot", "--payload", '{"delay": 0}')
    assert offline.returncode == 1
    assert "DeviceNotOnline" in offline.stderr
    assert "Traceback" not in offline.stderr
    missing = _twinfleet(hub, "twin", "show", "nobody")
    assert missing.returncode == 1
    assert "DeviceNotFound" in missing.stderr


def test_campaign_commands(hub: LocalHub) -> None:
    for i in range(3):
        assert _twinfleet(hub, "device", "create", f"c-{i}").returncode == 0
    created = _twinfleet(
        hub, "campaign", "create", "config", "tune", "--settings", '{"interval": 5}',
        "--config-version", "2", "--target", "deviceId IN ['c-0', 'c-1', 'c-2']",
        "--canary", "deviceId = 'c-0'", "--rate", "30",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    empty = _twinfleet(
        hub, "campaign", "create", "config", "nobody", "--settings", '{"interval": 5}',
        "--config-version", "2", "--target", "tags.ring = 'nowhere'",
    )  # fmt: skip
    assert empty.returncode == 1
    assert "matches no device" in empty.stderr
    assert "--allow-empty" in empty.stderr
    planned = _twinfleet(hub, "campaign", "plan", "tune")
    assert "3 devices" in planned.stdout
    assert "'canary': 1" in planned.stdout
    listed = _twinfleet(hub, "campaign", "list")
    assert "tune" in listed.stdout
    assert "configuration" in listed.stdout
    once = _twinfleet(hub, "campaign", "run", "tune", "--once")
    assert once.returncode == 0, once.stderr
    listed = json.loads(_twinfleet(hub, "campaign", "status", "tune", "--devices", "--json").stdout)
    assert sorted(d["deviceId"] for d in listed) == ["c-0", "c-1", "c-2"]
    assert {d["state"] for d in listed} <= {"queued", "admitted"}
    admitted = _twinfleet(hub, "campaign", "status", "tune", "--state", "admitted", "--json")
    assert [d["deviceId"] for d in json.loads(admitted.stdout)] == ["c-0"]  # the canary first
    paused = _twinfleet(hub, "campaign", "pause", "tune")
    assert "paused" in paused.stdout
    cancelled = _twinfleet(hub, "campaign", "cancel", "tune")
    assert "cancelled" in cancelled.stdout
    status = _twinfleet(hub, "campaign", "status", "tune")
    assert "cancelled" in status.stdout
    unknown = _twinfleet(hub, "campaign", "status", "nope")
    assert unknown.returncode == 1
    assert "No campaign 'nope'" in unknown.stderr


def test_job_commands(hub: LocalHub) -> None:
    assert _twinfleet(hub, "device", "create", "j-1").returncode == 0
    done = _twinfleet(
        hub, "job", "update-twin", "deviceId = 'j-1'", "--tags", '{"wave": 1}', "--wait"
    )
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout
    assert "succeeded 1" in done.stdout
    job_id = done.stdout.split()[1]
    assert "j-1" in _twinfleet(hub, "job", "show", job_id).stdout
    assert job_id in _twinfleet(hub, "job", "list").stdout
    shown = json.loads(_twinfleet(hub, "job", "show", job_id, "--json").stdout)
    assert (shown["jobId"], shown["status"]) == (job_id, "completed")
    assert [r["deviceId"] for r in shown["deviceResults"]] == ["j-1"]
    assert [j["jobId"] for j in json.loads(_twinfleet(hub, "job", "list", "--json").stdout)] == [
        job_id
    ]

    nobody = _twinfleet(hub, "job", "invoke", "tags.wave = 2", "reboot")
    assert nobody.returncode == 1
    assert "matches no device" in nobody.stderr
    assert "--allow-empty" in nobody.stderr
    assert len(json.loads(_twinfleet(hub, "job", "list", "--json").stdout)) == 1  # none made
    allowed = _twinfleet(hub, "job", "invoke", "tags.wave = 2", "reboot", "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr


def test_identities_print_as_json_in_azure_shapes(hub: LocalHub, tmp_path: Path) -> None:
    assert _twinfleet(hub, "device", "create", "id-1").returncode == 0
    listed = json.loads(_twinfleet(hub, "device", "list", "--json").stdout)
    assert [(d["deviceId"], d["status"]) for d in listed] == [("id-1", "enabled")]
    shown = json.loads(_twinfleet(hub, "device", "show", "id-1").stdout)
    assert shown["deviceId"] == "id-1"
    assert "primary_key" not in shown
    assert "SharedAccessKey" not in json.dumps(listed) + json.dumps(shown)
    primary = _twinfleet(hub, "device", "connection-string", "show", "id-1").stdout.strip()
    secondary = _twinfleet(
        hub, "device", "connection-string", "show", "id-1", "--key-type", "secondary"
    ).stdout.strip()
    assert primary != secondary
    for text in (primary, secondary):  # each connects the device through the SDK
        client = IoTHubDeviceClient.create_from_connection_string(
            text, server_verification_cert=Path(hub.ca_certificate_path).read_text()
        )
        try:
            client.connect()
            client.patch_twin_reported_properties({"seen": True})
        finally:
            client.shutdown()
    # from any working directory: hub.json's paths are absolute
    elsewhere = subprocess.run(
        [sys.executable, "-m", "twinfleet", "device", "list", "--json", "--hub-dir",
         str(hub.data_dir.resolve())],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert elsewhere.returncode == 0, elsewhere.stderr


def test_a_hub_dir_without_a_hub_is_named(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "twinfleet", "device", "list", "--hub-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"error: No hub is running in {tmp_path}")
    assert "twinfleet hub serve" in missing.stderr
