"""The service endpoint: IoT Hub's REST API over HTTPS, as `azure-iot-hub` calls it."""

from local_hub.rest.app import make_app
from local_hub.rest.artifacts import sign_artifact, signed_url
from local_hub.rest.context import ServiceContext

__all__ = ["ServiceContext", "make_app", "sign_artifact", "signed_url"]
