"""The device endpoint: MQTT 3.1.1 over TLS, as `azure-iot-device` speaks it."""

from local_hub.mqtt.codec import MalformedPacket
from local_hub.mqtt.endpoint import DeviceEndpoint

__all__ = ["DeviceEndpoint", "MalformedPacket"]
