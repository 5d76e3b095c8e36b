"""The root command imports each command's module only when that command runs: `twinfleet
--help` and a simple command load neither the dashboard, nor the embedded hub, nor the demo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer.main

from twinfleet.cli import main

HEAVY = ("local_hub.hub", "local_hub.server", "twinfleet.dashboard", "twinfleet.demo", "aiohttp")


def _imported(*args: str, cwd: Path) -> set[str]:
    """The modules `twinfleet ARGS` imports, from `python -X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "twinfleet", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
    )  # fmt: skip
    return set(re.findall(r"^import time:.*\|\s+(\S+)$", result.stderr, re.MULTILINE))


@pytest.mark.parametrize(
    "args",
    [("--help",), ("device", "list", "--hub-dir", "no-hub-here"), ("job", "--help")],
    ids=["help", "device-list", "job-help"],
)
def test_simple_commands_import_nothing_heavy(args: tuple[str, ...], tmp_path: Path) -> None:
    imported = _imported(*args, cwd=tmp_path)
    assert "twinfleet.cli.main" in imported  # the measurement saw the CLI start
    assert not {m for m in imported if m.startswith(HEAVY)}


def test_the_listing_shows_each_commands_own_help() -> None:
    group = typer.main.get_command(main.app)
    ctx = click.Context(group)
    for name, lazy in main.COMMANDS.items():
        command = lazy.load(name)
        assert command.name == name
        assert (command.help or "").split("\n\n")[0].replace("\n", " ") == lazy.help, name
    assert group.list_commands(ctx) == list(main.COMMANDS)
