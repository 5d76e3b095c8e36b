"""The `twinfleet` command line."""

from twinfleet.cli.main import app, run

__all__ = ["app", "run"]
