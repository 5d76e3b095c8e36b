"""The twinfleet command line, the demo and (later) the dashboard."""

__all__: list[str] = []
