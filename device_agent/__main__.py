"""`python -m device_agent`: the same as the `twinfleet-agent` command."""

import sys

from device_agent.cli import main

sys.exit(main())
