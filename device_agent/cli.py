"""`twinfleet-agent` (and `python -m device_agent`): the device agent as a device runs it.

    twinfleet-agent --config /etc/twinfleet/agent.toml

Only the standard library and the `[agent]` extra are imported, so the command works in a device's
`pip install twinfleet[agent]`. Options given on the command line override the file; without a
file they must say everything (`--connection-string`, `--state-dir`, `--simulated`; or, for a
device that provisions itself, `--dps-host`, `--id-scope`, `--registration-id` and
`--symmetric-key` instead of the connection string).

Exit status: 0 when stopped by a signal; 2 when the settings are wrong (one line on stderr naming
the setting and the fix; the unit file does not restart on 2); 1 when the agent failed otherwise.
A simulated reboot replaces the process with a fresh one (same pid, as systemd expects).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from device_agent import errors, notifying, serving, settings, units

__all__ = ["build_parser", "main"]

log = logging.getLogger("device_agent")

_SECRETS = re.compile(r"(SharedAccessKey=|sig=|SharedAccessSignature=)[^;&\s\"']+")
DEFAULT_CONFIG = "/etc/twinfleet/agent.toml"
_PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


class _OneLine(logging.Formatter):
    """One line per event (a traceback joined with ` | `), secrets masked, and under the journal
    a `<priority>` prefix instead of a time (journald adds its own)."""

    def __init__(self, journal: bool, secrets: Sequence[str]) -> None:
        shape = (
            "%(name)s: %(message)s"
            if journal
            else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        super().__init__(shape)
        self._journal = journal
        self._secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _SECRETS.sub(r"\1***", text).replace("\r", "").replace("\n", " | ")
        if self._journal:
            priority = _PRIORITIES.get(record.levelno, 2 if record.levelno > logging.ERROR else 6)
            text = f"<{priority}>{text}"
        return text


def configure_logging(level: str, secrets: Sequence[str] = ()) -> None:
    """Log one line per event to stderr at `level` (the SDK's chatter only at debug)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("JOURNAL_STREAM" in os.environ, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    for noisy in ("azure", "paho", "urllib3", "transitions"):
        logging.getLogger(noisy).setLevel(quiet)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twinfleet-agent",
        description="Run the twinfleet device agent: connect to the hub, drive the device toward "
        "its desired twin and report every step, until stopped.",
        epilog="`twinfleet-agent --example` prints a commented settings file to start from; "
        "`--systemd-unit` prints a unit that runs the agent under systemd.",
    )
    parser.add_argument("--config", type=Path, help="the agent's TOML settings file")
    parser.add_argument(
        "--connection-string",
        default=os.environ.get("TWINFLEET_DEVICE_CONNECTION_STRING"),
        help="the device's connection string (default: $TWINFLEET_DEVICE_CONNECTION_STRING); "
        "prefer a key file in the settings",
    )
    parser.add_argument(
        "--ca-cert", type=Path, help="a CA file to trust for the hub (and the provisioning service)"
    )
    provisioned = parser.add_argument_group(
        "provisioning", "register with a Device Provisioning Service, which assigns the hub"
    )
    provisioned.add_argument("--dps-host", help="the provisioning service's host name")
    provisioned.add_argument("--id-scope", help="the provisioning service's ID scope")
    provisioned.add_argument("--registration-id", help="the device's registration id")
    provisioned.add_argument(
        "--symmetric-key",
        default=os.environ.get("TWINFLEET_DEVICE_SYMMETRIC_KEY"),
        help="the device's key (in a group: derived from the group's; default: "
        "$TWINFLEET_DEVICE_SYMMETRIC_KEY); prefer a key file in the settings",
    )
    parser.add_argument("--state-dir", type=Path, help="where the agent keeps its state")
    parser.add_argument(
        "--simulated", action="store_true", help="run on a simulated A/B device (files)"
    )
    parser.add_argument("--initial-version", help="simulated: the factory firmware version")
    parser.add_argument(
        "--app", action="append", default=[], metavar="MODULE:ATTRIBUTE",
        help="handlers of yours to run besides the settings' (repeatable): a handler, a list "
        "of them, a class or factory making them, or a function called with the agent",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default: info"
    )
    parser.add_argument(
        "--example", action="store_true", help="print a commented settings file and exit"
    )
    parser.add_argument(
        "--systemd-unit",
        action="store_true",
        help="print a systemd unit that runs this command with --config (default "
        f"{DEFAULT_CONFIG}) and exit",
    )
    return parser


def _unit(config: Path | None) -> str:
    script = Path(sys.executable).parent / "twinfleet-agent"
    command = str(script) if script.exists() else f"{sys.executable} -m device_agent"
    return units.render(command, str((config or Path(DEFAULT_CONFIG)).absolute()))


def _fail(message: str) -> int:
    print(f"twinfleet-agent: error: {message}", file=sys.stderr, flush=True)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; returns the exit status of a refusal (see the module doc).

    Once the agent has run, the process ends in here (`os._exit`, or `exec` for a simulated
    reboot) rather than returning, so that no worker thread outlives the agent.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = build_parser().parse_args(arguments)
    if options.systemd_unit:
        print(_unit(options.config), end="")
        return 0
    if options.example:
        print(settings.EXAMPLE, end="")
        return 0
    overrides: dict[str, Any] = {
        "connection_string": options.connection_string, "ca_file": options.ca_cert,
        "state_dir": options.state_dir, "simulated": options.simulated,
        "initial_version": options.initial_version, "log_level": options.log_level,
        "handlers": options.app, "dps_host": options.dps_host, "id_scope": options.id_scope,
        "registration_id": options.registration_id, "symmetric_key": options.symmetric_key,
    }  # fmt: skip
    try:
        config = settings.load(options.config, overrides)
        secrets = config.secrets()
    except errors.InvalidSettings as exc:
        return _fail(str(exc))
    configure_logging(config.log_level, secrets)
    notifier = notifying.Notifier()
    runner = asyncio.Runner()
    try:
        outcome = runner.run(serving.serve(config, notifier))
    except errors.InvalidSettings as exc:
        runner.close()
        return _fail(f"{options.config}: {exc}" if options.config else str(exc))
    except errors.HubRefused as exc:
        log.error("%s; fix the device's credentials or provision it (see --dps-host)", exc)
        return _leave(1)
    except Exception as exc:
        log.error("the agent failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return _leave(1)
    finally:
        notifier.close()
    if outcome == "reboot":
        log.info("simulated reboot: starting the agent again")
        _flush()
        os.execv(sys.executable, [sys.executable, "-m", "device_agent", *arguments])
    return _leave(0 if outcome == "stopped" else 1)


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()


def _leave(status: int) -> NoReturn:
    """Exit now, without waiting for a firmware step still running on a worker thread.

    Waiting would let a download, an install, even the reboot that follows, go on while the
    service is being stopped. Every step's state is on disk, written to survive a power cut at
    any instant, so the next start resumes where this one left off.
    """
    _flush()
    os._exit(status)
