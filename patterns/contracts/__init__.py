"""The twin contract device and back end share: one pydantic model per twin section.

Imports nothing of twinfleet's and nothing but pydantic, so the device agent can use it alone.
"""

from patterns.contracts import configuration, firmware, methods
from patterns.contracts.configuration import (
    ConfigurationDesired,
    ConfigurationReported,
    ConfigurationStatus,
)
from patterns.contracts.firmware import (
    FirmwareDesired,
    FirmwareReported,
    FirmwareStatus,
    signed_statement,
)
from patterns.contracts.methods import (
    FACTORY_RESET,
    REBOOT,
    FactoryResetPayload,
    FactoryResetReported,
    FactoryResetStatus,
    RebootPayload,
    RebootReported,
)

__all__ = [
    "FACTORY_RESET",
    "REBOOT",
    "ConfigurationDesired",
    "ConfigurationReported",
    "ConfigurationStatus",
    "FactoryResetPayload",
    "FactoryResetReported",
    "FactoryResetStatus",
    "FirmwareDesired",
    "FirmwareReported",
    "FirmwareStatus",
    "RebootPayload",
    "RebootReported",
    "configuration",
    "firmware",
    "methods",
    "signed_statement",
]
