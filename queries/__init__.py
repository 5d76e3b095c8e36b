"""The IoT Hub query language: parse, validate and evaluate twin and job queries."""

__all__: list[str] = []
