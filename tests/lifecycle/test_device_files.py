"""`twinfleet device import` and `twinfleet device export` through the real entry point: a
realistic fleet round-trips, bad rows are named by line, a re-run resumes and names what
differs, and keys appear only when asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from local_hub import LocalHub
from twin_manager import TwinManager

DEVICES = 300


def _twinfleet(hub: LocalHub, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "twinfleet", "device", *args, "--hub-dir", str(hub.data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _rows(count: int) -> list[dict[str, object]]:
    return [
        {"deviceId": f"imp-{i:04d}", "status": "disabled" if i % 50 == 0 else "enabled",
         "tags": {"site": "north" if i % 2 else "south", "rack": i // 10},
         "desired": {"configuration": {"version": 1, "interval": 30}} if i % 3 else {}}
        for i in range(count)
    ]  # fmt: skip


def test_import_then_export_round_trips(hub: LocalHub, tmp_path: Path) -> None:
    source = tmp_path / "fleet.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in _rows(DEVICES)))
    imported = _twinfleet(hub, "import", str(source))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.splitlines()[-1].startswith(f"{DEVICES} created, 0 already there")
    exported = _twinfleet(hub, "export")
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(line) for line in exported.stdout.splitlines()] == _rows(DEVICES)
    assert "Key" not in exported.stdout

    north = _twinfleet(hub, "export", "--query", "tags.site = 'north' AND tags.rack < 2")
    assert [json.loads(line)["deviceId"] for line in north.stdout.splitlines()] == [
        f"imp-{i:04d}" for i in range(1, 20, 2)
    ]
    with_keys = _twinfleet(hub, "export", "--query", "deviceId = 'imp-0007'", "--include-keys")
    row = json.loads(with_keys.stdout)
    with TwinManager.from_local_hub(hub) as fleet:
        device = fleet.devices.get("imp-0007")
    assert (row["primaryKey"], row["secondaryKey"]) == (device.primary_key, device.secondary_key)
    # The keys came from one export job, whose container is gone with its file.
    assert not list((hub.data_dir / "artifacts").glob("twinfleet-export-*"))


def test_bad_rows_by_line_and_a_resumed_import(hub: LocalHub, tmp_path: Path) -> None:
    with TwinManager.from_local_hub(hub) as fleet:
        fleet.devices.create("csv-3")
        fleet.twins.update_tags("csv-3", {"site": "elsewhere"})
    key = "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS0="
    source = tmp_path / "fleet.csv"
    source.write_text(
        "deviceId,status,tags,desired,primaryKey\n"
        f'csv-1,enabled,"{{""site"": ""a""}}","{{""x"": 1}}",{key}\n'
        'csv-2,sleeping,,,\n'  # line 3: no such status
        'csv-3,enabled,"{""site"": ""a""}",,\n'  # exists, with other tags
        'csv-4,enabled,"{not json",,\n'  # line 5
        'csv-1,enabled,,,\n'  # line 6: twice
        'csv-5,enabled,,"{""$bad"": 1}",\n'  # line 7: registered, but desired refused
        'csv-6,,,,\n'
    )  # fmt: skip
    first = _twinfleet(hub, "import", str(source))
    assert first.returncode == 1
    assert key not in first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("line 3: csv-2 was not imported: status")
    assert lines[1] == "line 4: csv-3 exists and differs (tags); left as it is"
    assert lines[2].startswith("line 5: csv-4 was not imported: tags is not JSON")
    assert lines[3] == "line 6: csv-1 was not imported: device 'csv-1' is also on line 2"
    assert lines[4].startswith("line 7: csv-5 was registered, but its tags and desired")
    assert lines[5] == "3 created, 0 already there, 1 differing, 1 partly imported, 3 not imported"
    with TwinManager.from_local_hub(hub) as fleet:
        assert fleet.devices.get("csv-1").primary_key == key
        assert fleet.twins.get("csv-1").desired == {"x": 1}
        assert fleet.twins.get("csv-6").tags == {}

    again = _twinfleet(hub, "import", str(source))  # resumes: nothing created twice
    assert again.returncode == 1
    assert again.stdout.splitlines()[-1] == (
        "0 created, 2 already there, 2 differing, 0 partly imported, 3 not imported"
    )
    assert "line 7: csv-5 exists and differs (desired)" in again.stdout

    missing = _twinfleet(hub, "import", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
