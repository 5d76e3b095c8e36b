"""`twinfleet dps ...`: the service in a child process (`twinfleet dps serve`), enrollments managed
with the commands, a device provisioned through it by the unmodified SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.iot.device import ProvisioningDeviceClient
from click.testing import Result
from typer.testing import CliRunner

from local_hub import LocalHub
from tests.conftest import allocate_loopback
from twinfleet.cli.main import app


def _twinfleet(*args: str) -> Result:
    """`twinfleet dps ARGS` in this process (the service itself runs in a child process)."""
    return CliRunner().invoke(app, ["dps", *args])


@pytest.fixture
def dps_process(hub: LocalHub, tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    data_dir = tmp_path / "dps"
    process = subprocess.Popen(
        [sys.executable, "-m", "twinfleet", "dps", "serve", "--data-dir", str(data_dir),
         "--host", allocate_loopback(), "--service-port", "8444", "--hub-dir", str(hub.data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (data_dir / "dps.json").exists():
            assert process.poll() is None, "dps serve exited"
            assert time.monotonic() < deadline, "dps serve did not write dps.json"
            time.sleep(0.05)
        yield data_dir, json.loads((data_dir / "dps.json").read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert not (data_dir / "dps.json").exists()
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def test_a_group_made_on_the_command_line_provisions_a_device(
    hub: LocalHub, dps_process: tuple[Path, dict[str, Any]]
) -> None:
    data_dir, info = dps_process
    assert info["serviceConnectionString"].startswith(
        f"HostName={info['provisioningHost']}:8444;SharedAccessKeyName=provisioningserviceowner;"
    )
    assert Path(info["caCertificatePath"]).read_text() == hub.ca_certificate
    dps = ("--dps-dir", str(data_dir))
    twin = '{"tags": {"site": "lab"}}'
    created = _twinfleet(
        "enrollment-group", "create", "lab", *dps, "--initial-twin", twin, "--json"
    )
    assert created.exit_code == 0, created.stderr
    group = json.loads(created.stdout)
    group_key = group["attestation"]["symmetricKey"]["primaryKey"]
    assert group["initialTwin"]["tags"] == {"site": "lab"}
    listed = json.loads(_twinfleet("enrollment-group", "list", *dps, "--json").stdout)
    assert [g["enrollmentGroupId"] for g in listed] == ["lab"]
    assert "attestation" not in listed[0]
    derived = _twinfleet("derive-key", "--group-key", group_key, "probe-1")
    assert derived.exit_code == 0, derived.stderr

    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=info["provisioningHost"],
        registration_id="probe-1",
        id_scope=info["idScope"],
        symmetric_key=derived.stdout.strip(),
        server_verification_cert=hub.ca_certificate,
    )
    result = client.register()

    assert result.registration_state.assigned_hub == hub.host
    states = json.loads(_twinfleet("registrations", *dps, "--json").stdout)
    assert [(s["registrationId"], s["status"], s["enrollmentGroupId"]) for s in states] == [
        ("probe-1", "assigned", "lab")
    ]
    assert _twinfleet("enrollment-group", "delete", "lab", *dps).exit_code == 0
    gone = _twinfleet("enrollment-group", "show", "lab", *dps)
    assert (gone.exit_code, gone.stderr) == (1, "error: There is no enrollment group 'lab'.\n")


def test_individual_enrollments_and_bad_input_on_the_command_line(
    dps_process: tuple[Path, dict[str, Any]],
) -> None:
    dps = ("--dps-dir", str(dps_process[0]))
    made = _twinfleet("enrollment", "create", "pump-9", *dps, "--device-id", "pump", "--json")
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["deviceId"] == "pump"
    shown = _twinfleet("enrollment", "show", "pump-9", *dps)
    assert "deviceId: pump" in shown.stdout
    assert "pump-9" in _twinfleet("enrollment", "list", *dps).stdout
    again = _twinfleet("enrollment", "create", "pump-9", *dps)
    assert (again.exit_code, again.stderr) == (
        1,
        "error: The enrollment 'pump-9' already exists.\n",
    )
    bad_policy = _twinfleet("enrollment", "create", "x", *dps, "--allocation", "custom")
    assert bad_policy.exit_code == 2
    assert "--allocation must be one of hashed, static" in bad_policy.stderr
    bad_twin = _twinfleet("enrollment", "create", "x", *dps, "--initial-twin", '{"reported": {}}')
    assert bad_twin.exit_code == 2
    assert "may hold only tags and properties" in bad_twin.stderr
    bad_key = _twinfleet("derive-key", "--group-key", "not base64!", "x")
    assert (bad_key.exit_code, bad_key.stderr) == (
        2,
        "error: --group-key: the key is not valid base64\n",
    )
    assert _twinfleet("enrollment", "delete", "pump-9", *dps).exit_code == 0
    assert _twinfleet("enrollment", "list", *dps, "--json").stdout.strip() == "[]"
    nowhere = _twinfleet("registrations", "--dps-dir", str(dps_process[0].parent / "none"))
    assert nowhere.exit_code == 2
    assert "holds no provisioning service" in nowhere.stderr
