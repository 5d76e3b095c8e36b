"""A local Device Provisioning Service that `azure-iot-device`'s `ProvisioningDeviceClient`
provisions through (MQTT over TLS, symmetric-key attestation), assigning devices to local hubs."""

from local_hub.provisioning.background import LocalDps
from local_hub.provisioning.enrollments import ALLOCATION_POLICIES, EnrollmentError, Enrollments
from local_hub.provisioning.keys import derive_device_key, new_key
from local_hub.provisioning.server import ProvisioningServer, serve
from local_hub.provisioning.state import ProvisioningStore

__all__ = [
    "ALLOCATION_POLICIES",
    "EnrollmentError",
    "Enrollments",
    "LocalDps",
    "ProvisioningServer",
    "ProvisioningStore",
    "derive_device_key",
    "new_key",
    "serve",
]
