"""The patterns twinfleet ships, each one module written against `patterns.api` alone.

Adding a built-in is one module here, its contract models in `patterns.contracts` (if any) and
its handler in `device_agent.handlers`; `PATTERNS` below lists it.
"""

from patterns.builtin import configuration, diagnostics, factory_reset, firmware, reboot, retire
from patterns.builtin.configuration import ConfigurationChange
from patterns.builtin.diagnostics import DiagnosticsUpload
from patterns.builtin.factory_reset import FactoryReset
from patterns.builtin.firmware import FirmwareUpdate
from patterns.builtin.reboot import Reboot
from patterns.builtin.retire import Retire

__all__ = [
    "PATTERNS",
    "ConfigurationChange",
    "DiagnosticsUpload",
    "FactoryReset",
    "FirmwareUpdate",
    "Reboot",
    "Retire",
    "configuration",
    "diagnostics",
    "factory_reset",
    "firmware",
    "reboot",
    "retire",
]

PATTERNS = (
    firmware.PATTERN,
    configuration.PATTERN,
    reboot.PATTERN,
    factory_reset.PATTERN,
    diagnostics.PATTERN,
    retire.PATTERN,
)
