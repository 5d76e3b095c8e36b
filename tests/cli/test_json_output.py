"""`--json` on every command that prints data, camelCase as IoT Hub writes JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from local_hub import LocalHub
from twinfleet.cli import main

# Commands that print no data (they serve, run, delete or confirm), or print a secret key alone.
NO_DATA = {
    "demo", "dashboard", "query-demo", "hub serve", "dps serve", "agent run", "fleet simulate",
    "dps enrollment-group delete", "dps enrollment delete", "artifact delete", "device delete",
    *(f"campaign create {kind}" for kind in ("from-file", "firmware", "config", "reboot",
                                             "factory-reset", "configuration", "factoryReset",
                                             "diagnostics", "retire", "key-rotation")),
}  # fmt: skip


def _leaves(command: Any, path: list[str]) -> Any:
    if hasattr(command, "list_commands"):
        ctx = typer.Context(command)
        for name in command.list_commands(ctx):
            yield from _leaves(command.get_command(ctx, name), [*path, name])
    else:
        yield " ".join(path), command


def test_every_command_that_prints_data_takes_json() -> None:
    missing, needless = [], []
    for name, lazy in main.COMMANDS.items():
        for path, command in _leaves(lazy.load(name), [name]):
            has = any("--json" in p.opts for p in command.params)
            if not has and path not in NO_DATA:
                missing.append(path)
            if has and path in NO_DATA:
                needless.append(path)
    assert (missing, needless) == ([], [])


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _json(hub: LocalHub | None, *args: str, names_as_declared: bool = False) -> Any:
    """The command's JSON; its keys camelCase unless they are names the user declares (a
    pattern's parameters, as `--param name=value` takes them)."""
    hub_args = ["--hub-dir", str(hub.data_dir)] if hub is not None else []
    result = subprocess.run([sys.executable, "-m", "twinfleet", *args, "--json", *hub_args],
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    snake = {k for k in _keys(parsed) if "_" in k.strip("$")}
    assert names_as_declared or not snake, f"{args}: snake_case keys {snake}"
    return parsed


def test_data_commands_print_camel_case_json(hub: LocalHub, tmp_path: Path) -> None:
    created = _json(hub, "device", "create", "js-1")
    assert created["deviceId"] == "js-1"
    assert created["connectionString"].startswith(f"HostName={hub.device_host_name};")
    assert "primaryKey" not in json.dumps(created)
    shown = _json(hub, "device", "connection-string", "show", "js-1")
    assert shown == {"connectionString": created["connectionString"]}
    twin = _json(hub, "twin", "set-tags", "js-1", '{"ring": "canary"}')
    assert twin["tags"] == {"ring": "canary"}
    twin = _json(hub, "twin", "set-desired", "js-1", '{"mode": "eco"}')
    assert twin["properties"]["desired"]["mode"] == "eco"
    assert _json(hub, "twin", "show", "js-1")["deviceId"] == "js-1"

    made = subprocess.run(
        [sys.executable, "-m", "twinfleet", "campaign", "create", "config", "js", "--settings",
         '{"interval": 5}', "--config-version", "2", "--target", "deviceId = 'js-1'",
         "--hub-dir", str(hub.data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    planned = _json(hub, "campaign", "plan", "js")
    assert planned["devices"] == [
        {"deviceId": "js-1", "group": "all", "wave": 0, "startsAfterSeconds": 0}
    ]
    assert planned["groups"] == {"all": 1}
    assert _json(hub, "campaign", "list") == [
        {"id": "js", "pattern": "configuration", "status": "created", "target": "deviceId = 'js-1'"}
    ]
    once = _json(hub, "campaign", "run", "js", "--once")
    assert (once["id"], once["status"], once["counts"]) == ("js", "running", {"admitted": 1})
    assert _json(hub, "campaign", "pause", "js") == {"id": "js", "status": "paused"}

    job = _json(hub, "job", "update-twin", "deviceId = 'js-1'", "--tags", '{"site": "p7"}')
    cancelled = _json(hub, "job", "cancel", job["jobId"])
    assert cancelled["jobId"] == job["jobId"]
    assert cancelled["status"] in ("cancelled", "completed")  # it may have finished first

    patterns = _json(None, "patterns", "list", names_as_declared=True)
    assert [p["kind"] for p in patterns][:2] == ["firmware", "configuration"]
    assert "version" in patterns[0]["params"]["$defs"]["FirmwareUpdate"]["properties"]
    keys = _json(None, "firmware", "keygen", "release", "--dir", str(tmp_path))
    assert keys == {"privateKeyPath": str(tmp_path / "release.key"),
                    "publicKeyPath": str(tmp_path / "release.pem")}  # fmt: skip
    derived = _json(None, "dps", "derive-key", "dev-1", "--group-key", "a2V5a2V5a2V5a2V5")
    assert derived["registrationId"] == "dev-1"
    assert derived["symmetricKey"]
