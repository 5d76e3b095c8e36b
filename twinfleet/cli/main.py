"""The root `twinfleet` command: each command group lives in a module of its own."""

import logging

import typer

from twinfleet.cli import agent, demo, fleet, hub, query_demo

__all__ = ["app", "run"]

app = typer.Typer(
    name="twinfleet",
    help="Manage fleets of IoT devices through their device twins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


app.command("demo")(demo.demo)
app.command("query-demo")(query_demo.query_demo)
app.add_typer(hub.app, name="hub")
app.add_typer(agent.app, name="agent")
app.add_typer(fleet.app, name="fleet")


def run() -> None:
    """Entry point of the `twinfleet` console script."""
    app()
