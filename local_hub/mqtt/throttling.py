"""The MQTT side of the hub's quotas: twin requests, telemetry and new connections.

A twin GET draws on "twin reads", a reported patch on "twin updates", a telemetry message on
"device-to-cloud sends", an accepted CONNECT on "new device connections". Within the shaping queue
the device is simply served late (its connection reads nothing meanwhile, which is how a broker
pushes back). Past it, the device is refused the way IoT Hub refuses it over MQTT:

- a twin request is answered with status 429 (`$iothub/twin/res/429/?$rid=...`), which the
  device SDK raises as a `ServiceError` for the caller to retry; the PUBLISH is acknowledged;
- telemetry has no status to answer with: the connection is closed without a PUBACK, so the
  SDK reconnects and sends the message again;
- a CONNECT is answered with CONNACK code 3 (server unavailable), which the SDK retries.
"""

from __future__ import annotations

import json
import logging

from local_hub import errors, quotas
from local_hub.mqtt import codec, topics
from local_hub.mqtt.connection import Connection

__all__ = ["SERVER_UNAVAILABLE", "admit_connect", "admit_publish"]

log = logging.getLogger(__name__)

SERVER_UNAVAILABLE = 3


async def admit_connect(limits: quotas.Quotas, device_id: str) -> bool:
    """True when a new connection may be accepted now (after any shaping wait)."""
    try:
        await limits.admit("newDeviceConnections")
    except errors.Throttled:
        log.info("refused device %s: new device connections are throttled", device_id)
        return False
    return True


async def admit_publish(
    limits: quotas.Quotas, connection: Connection, packet: codec.Publish
) -> bool:
    """True when the PUBLISH may be handled; False when it was refused (and answered)."""
    request = topics.parse_device_topic(packet.topic, connection.device_id)
    if isinstance(request, topics.TwinGet | topics.ReportedPatch):
        throttle = "twinReads" if isinstance(request, topics.TwinGet) else "twinUpdates"
        try:
            await limits.admit(throttle)
        except errors.Throttled as exc:
            body = json.dumps({"errorCode": int(exc.error_code), "message": exc.message})
            topic = topics.twin_response_topic(exc.status, request.rid)
            connection.send(codec.Publish(topic, body.encode()))
            if packet.qos == 1 and packet.packet_id is not None:
                connection.send(codec.PubAck(packet.packet_id))
            return False
    elif isinstance(request, topics.Telemetry):
        try:
            await limits.admit("deviceToCloudSends")
        except errors.Throttled:
            log.info("device %s: telemetry throttled; closing its connection", connection.device_id)
            connection.close()
            return False
    return True
