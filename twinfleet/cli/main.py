"""The root `twinfleet` command: each command group lives in a module of its own, imported only
when that command runs.

`twinfleet --help` and a simple command such as `twinfleet device list` must not pay for the
dashboard's web server, the embedded hub or the demo: `COMMANDS` names each command's module and
attribute with its one-line help, the listing is built from that table alone, and the module is
imported when the command is resolved to run (or to show its own help, or for `make docs`).
A test holds the table's help lines equal to the commands' own.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

import typer
import typer.core
import typer.main

__all__ = ["COMMANDS", "LazyCommand", "app", "run"]


@dataclass(frozen=True)
class LazyCommand:
    """A command of the root group, and where it lives.

    Attributes:
        module: the module under `twinfleet.cli` that defines it.
        attribute: a `typer.Typer` (a command group) or a function (a single command).
        help: the one line `twinfleet --help` shows for it.
    """

    module: str
    attribute: str
    help: str

    def load(self, name: str) -> Any:
        """The click command (importing its module)."""
        target = getattr(importlib.import_module(f"twinfleet.cli.{self.module}"), self.attribute)
        # Made as the root would make it had it been added eagerly (a group stays a group even
        # with one command), inside a stand-in root that is discarded.
        holder = typer.Typer()
        holder.callback()(_nothing)
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=name)
        else:
            holder.command(name)(target)
        return typer.main.get_group(holder).commands[name]


def _nothing() -> None:
    """The stand-in root's callback."""


COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand("demo", "demo",
                        "Run a safe firmware rollout over a simulated fleet on an embedded hub."),
    "dashboard": LazyCommand("dashboard", "dashboard", "Serve a web dashboard of the fleet, its "
                             "queries, devices, campaigns, jobs and alerts."),
    "query-demo": LazyCommand("query_demo", "query_demo",
                              "Generate a fleet of device twins and run IoT Hub queries over it."),
    "query": LazyCommand("querying", "query",
                         "Run a query (checked locally first) and print the rows."),
    "invoke": LazyCommand("querying", "invoke", "Call a direct method and print the device's "
                          "answer."),
    "hub": LazyCommand("hub", "app", "Run the embedded, wire-compatible IoT Hub."),
    "dps": LazyCommand("dps", "app", "A local Device Provisioning Service: devices provision "
                       "themselves into local hubs."),
    "agent": LazyCommand("agent", "app", "Run the device agent."),
    "fleet": LazyCommand("fleet", "app", "Simulated fleets."),
    "firmware": LazyCommand("firmware", "app",
                            "Sign firmware images for devices with a trust store."),
    "device": LazyCommand("devices", "device_app", "Device identities."),
    "twin": LazyCommand("devices", "twin_app", "Device twins."),
    "campaign": LazyCommand("campaigns", "app",
                            "Safe rollouts of firmware, configuration, reboots and resets."),
    "artifact": LazyCommand("artifacts", "app",
                            "Files devices download (firmware images), served by the hub."),
    "job": LazyCommand("jobs", "app", "Scheduled jobs over twin queries."),
    "patterns": LazyCommand("patterns", "app", "The patterns campaigns can apply."),
}  # fmt: skip


class _LazyGroup(typer.core.TyperGroup):
    """The root group: commands from `COMMANDS`, imported when one is resolved; while the root's
    own help is written, each is a stand-in carrying its help line only."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        lazy = COMMANDS.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return typer.core.TyperCommand(cmd_name, help=lazy.help)
        return lazy.load(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="twinfleet",
    help="Manage fleets of IoT devices through their device twins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_LazyGroup,
)


_debug = False


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    global _debug
    _debug = debug
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from local_hub import redacting  # the redactor alone: no hub is imported for it

    redacting.install_redactor()  # keys, signatures, connection strings: never in a log


def _message(exc: BaseException) -> str | None:
    """The one-line (or query-with-caret) message of an error a user can fix, or None for one
    that is a bug (shown with its traceback). Imports only what raised it already imported."""
    from pydantic import ValidationError

    import queries

    fixable: tuple[type[BaseException], ...] = (queries.QueryError, ValidationError, ValueError,
                                                OSError)  # fmt: skip
    twin_manager_errors = sys.modules.get("twin_manager.errors")
    if twin_manager_errors is not None:
        fixable += (twin_manager_errors.TwinManagerError,)
        if isinstance(exc, twin_manager_errors.InvalidQuery):
            return str(exc)  # the query's line and a caret under the fault follow
    if not isinstance(exc, fixable):
        return None
    if isinstance(exc, queries.QueryError):
        return str(exc)
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        return f"invalid {exc.title}: {problems}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def run() -> None:
    """Entry point of the `twinfleet` console script: errors are one clear line, no traceback
    unless `--debug`."""
    try:
        app(standalone_mode=True)
    except Exception as exc:
        message = None if _debug or "--debug" in sys.argv else _message(exc)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        sys.exit(1)
