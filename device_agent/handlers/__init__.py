"""Handlers of twin sections and direct methods: the built-ins, and the API to write more.

Each built-in is one module written against `device_agent.handlers.api` alone, as a user's
handler would be; `builtin()` makes a fresh set for one agent.
"""

from device_agent.handlers import api
from device_agent.handlers.api import (
    Agent,
    Handler,
    HandlerError,
    Invocation,
    MethodHandler,
    SectionHandler,
)
from device_agent.handlers.configuration import ConfigurationHandler, Configure
from device_agent.handlers.diagnostics import DiagnosticsHandler
from device_agent.handlers.factory_reset import FactoryResetHandler
from device_agent.handlers.firmware import FirmwareHandler
from device_agent.handlers.reboot import RebootHandler

__all__ = [
    "Agent",
    "ConfigurationHandler",
    "Configure",
    "DiagnosticsHandler",
    "FactoryResetHandler",
    "FirmwareHandler",
    "Handler",
    "HandlerError",
    "Invocation",
    "MethodHandler",
    "RebootHandler",
    "SectionHandler",
    "api",
    "builtin",
]


def builtin() -> list[Handler]:
    """A fresh set of the built-in handlers, with their default options."""
    return [
        FirmwareHandler(),
        ConfigurationHandler(),
        RebootHandler(),
        FactoryResetHandler(),
        DiagnosticsHandler(),
    ]
