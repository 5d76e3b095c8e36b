"""The root `twinfleet` command: each command group lives in a module of its own."""

import logging
import sys

import typer
from pydantic import ValidationError

import local_hub
from queries import QueryError
from twin_manager import InvalidQuery, TwinManagerError
from twinfleet.cli import (
    agent,
    artifacts,
    campaigns,
    dashboard,
    demo,
    devices,
    dps,
    firmware,
    fleet,
    hub,
    jobs,
    lifecycle,
    patterns,
    query_demo,
    querying,
)

__all__ = ["app", "run"]

app = typer.Typer(
    name="twinfleet",
    help="Manage fleets of IoT devices through their device twins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
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
    local_hub.install_redactor()  # keys, signatures, connection strings: never in a log


app.command("demo")(demo.demo)
app.command("dashboard")(dashboard.dashboard)
app.command("query-demo")(query_demo.query_demo)
app.add_typer(hub.app, name="hub")
app.add_typer(dps.app, name="dps")
app.add_typer(agent.app, name="agent")
app.add_typer(fleet.app, name="fleet")
app.add_typer(firmware.app, name="firmware")
lifecycle.register(devices.device_app)
app.add_typer(devices.device_app, name="device")
app.add_typer(devices.twin_app, name="twin")
app.add_typer(campaigns.app, name="campaign")
app.add_typer(artifacts.app, name="artifact")
app.add_typer(jobs.app, name="job")
app.add_typer(patterns.app, name="patterns")
app.command("query")(querying.query)
app.command("invoke")(querying.invoke)


def run() -> None:
    """Entry point of the `twinfleet` console script: errors are one clear line, no traceback
    unless `--debug`."""
    try:
        app(standalone_mode=True)
    except (TwinManagerError, QueryError, ValidationError, ValueError, OSError) as exc:
        if _debug or "--debug" in sys.argv:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, QueryError | InvalidQuery):
            message = str(exc)  # the query's line and a caret under the fault follow
        elif isinstance(exc, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
            )
            message = f"invalid {exc.title}: {problems}"
        typer.echo(f"error: {message}", err=True)
        sys.exit(1)
