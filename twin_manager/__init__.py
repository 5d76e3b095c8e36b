"""The back-end library over azure-iot-hub: typed twins, methods, queries, jobs, configurations."""

__all__: list[str] = []
