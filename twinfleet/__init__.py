"""The `twinfleet` command line, the demo and the web dashboard: applications, not a library.

- `twinfleet.cli`: the `twinfleet` command (`twinfleet --help`); `python -m twinfleet` is the same.
- `twinfleet.dashboard`: the web dashboard (`twinfleet dashboard`).
- `twinfleet.demo`: `make demo` (`twinfleet demo`).

The libraries they are built on are the other packages: `twin_manager` (the back end),
`patterns` (campaigns and the twin contract), `device_agent`, `queries` and `local_hub`.
"""

__all__: list[str] = []
