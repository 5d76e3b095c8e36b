"""`python -m twinfleet`: the same as the `twinfleet` command."""

from twinfleet.cli.main import run

run()
