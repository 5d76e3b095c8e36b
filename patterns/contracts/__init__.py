"""The twin contract device and back end share: one pydantic model per twin section.

Imports nothing of twinfleet's and nothing but pydantic, so the device agent can use it alone.
"""

from patterns.contracts import configuration, diagnostics, firmware, methods, patches, times
from patterns.contracts.configuration import (
    ConfigurationDesired,
    ConfigurationReported,
    ConfigurationStatus,
)
from patterns.contracts.diagnostics import (
    DiagnosticsReported,
    DiagnosticsRequest,
    DiagnosticsStatus,
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
from patterns.contracts.times import iso, iso_now, parse_iso

__all__ = [
    "FACTORY_RESET",
    "REBOOT",
    "ConfigurationDesired",
    "ConfigurationReported",
    "ConfigurationStatus",
    "DiagnosticsReported",
    "DiagnosticsRequest",
    "DiagnosticsStatus",
    "FactoryResetPayload",
    "FactoryResetReported",
    "FactoryResetStatus",
    "FirmwareDesired",
    "FirmwareReported",
    "FirmwareStatus",
    "RebootPayload",
    "RebootReported",
    "configuration",
    "diagnostics",
    "firmware",
    "iso",
    "iso_now",
    "methods",
    "parse_iso",
    "patches",
    "signed_statement",
    "times",
]
