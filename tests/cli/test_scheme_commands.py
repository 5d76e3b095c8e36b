"""`--scheme` (or TWINFLEET_SCHEME): the fleet's metadata scheme checks tag writes, campaign
targets, job conditions and queries before anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from local_hub import LocalHub

SCHEME = {
    "type": "object",
    "properties": {
        "tags": {
            "type": "object",
            "properties": {"region": {"enum": ["eu-west", "us-east"]}, "ring": {"type": "string"}},
        }
    },
    "required": ["tags"],
}


def _twinfleet(
    hub: LocalHub, *args: str, scheme: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TWINFLEET_SCHEME"}
    if scheme is not None:
        env["TWINFLEET_SCHEME"] = str(scheme)
    command = [sys.executable, "-m", "twinfleet", *args, "--hub-dir", str(hub.data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)


def test_commands_check_against_the_scheme(hub: LocalHub, tmp_path: Path) -> None:
    scheme = tmp_path / "fleet.json"
    scheme.write_text(json.dumps(SCHEME))
    assert _twinfleet(hub, "device", "create", "sch-1").returncode == 0
    good = _twinfleet(hub, "twin", "set-tags", "sch-1", '{"region": "eu-west"}',
                      "--scheme", str(scheme))  # fmt: skip
    assert good.returncode == 0, good.stderr

    bad = _twinfleet(hub, "twin", "set-tags", "sch-1", '{"regoin": "eu-west"}',
                     "--scheme", str(scheme))  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"error: tags.regoin is not a tag the scheme {scheme} declares; "
                                 "did you mean tags.region?")  # fmt: skip
    assert "Traceback" not in bad.stderr

    target = _twinfleet(hub, "campaign", "create", "reboot", "rb1", "--target",
                        "tags.regoin = 'eu-west'", "--scheme", str(scheme))  # fmt: skip
    assert target.returncode == 1
    assert target.stderr.splitlines() == [
        "error: 'tags.regoin' is not in the fleet's tag scheme; did you mean 'tags.region'? "
        "at line 1, column 1:",
        "  tags.regoin = 'eu-west'",
        "  ^",
    ]
    # the same through TWINFLEET_SCHEME, for a job
    job = _twinfleet(hub, "job", "update-twin", "tags.rign = 'canary'", "--desired", '{"x": 1}',
                     scheme=scheme)  # fmt: skip
    assert job.returncode == 1
    assert "did you mean 'tags.ring'?" in job.stderr
    assert json.loads(_twinfleet(hub, "job", "list", "--json").stdout) == []  # none was made
    query = _twinfleet(hub, "query", "SELECT * FROM devices WHERE tags.regoin = 'x'",
                       scheme=scheme)  # fmt: skip
    assert query.returncode == 1
    assert "did you mean 'tags.region'?" in query.stderr

    # without a scheme, nothing changes: the tag is written, the query runs (and matches)
    free = _twinfleet(hub, "twin", "set-tags", "sch-1", '{"regoin": "eu-west"}')
    assert free.returncode == 0, free.stderr
    rows = _twinfleet(hub, "query", "SELECT deviceId FROM devices WHERE tags.regoin = 'eu-west'",
                      "--json")  # fmt: skip
    assert rows.returncode == 0, rows.stderr
    assert [json.loads(line) for line in rows.stdout.splitlines()] == [{"deviceId": "sch-1"}]


def test_a_scheme_that_cannot_be_loaded_is_named(hub: LocalHub, tmp_path: Path) -> None:
    missing = _twinfleet(hub, "twin", "set-tags", "x", "{}", "--scheme", str(tmp_path / "no.json"))
    assert missing.returncode == 1
    assert missing.stderr == f"error: The scheme file {tmp_path / 'no.json'} does not exist.\n"
