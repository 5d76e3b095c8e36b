"""An embedded IoT Hub that the official Azure IoT SDKs talk to over their real wire protocols."""

__all__: list[str] = []
