"""The on-device agent over azure-iot-device: reconciles the device toward its desired twin."""

__all__: list[str] = []
