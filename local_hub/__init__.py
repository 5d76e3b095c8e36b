"""An embedded IoT Hub that the official Azure IoT SDKs talk to over their real wire protocols."""

from local_hub.errors import HubError
from local_hub.hub import LocalHub
from local_hub.redacting import SecretRedactor, install_redactor
from local_hub.server import HubServer, serve

__all__ = ["HubError", "HubServer", "LocalHub", "SecretRedactor", "install_redactor", "serve"]
