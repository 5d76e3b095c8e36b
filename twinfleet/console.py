"""The `twinfleet` console script: the back-end CLI, or a clear word when its extra is missing.

On a device installed with `pip install twinfleet[agent]` only, the `twinfleet` script exists
too (a distribution's scripts are not per extra), but the back-end CLI's dependencies do not.
"""

from __future__ import annotations

import sys

__all__ = ["run"]


def run() -> None:
    """Start the `twinfleet` CLI, or explain which install it needs."""
    try:
        from twinfleet.cli import main
    except ModuleNotFoundError as exc:
        print(
            f"twinfleet: the back-end command line needs more than this install has (no module "
            f"{exc.name!r}): pip install 'twinfleet[cli,backend,hub]'. On a device, run the "
            "agent with `twinfleet-agent --config FILE`.",
            file=sys.stderr,
        )
        sys.exit(1)
    main.run()
