"""The on-device agent over azure-iot-device: reconciles the device toward its desired twin.

agent = DeviceAgent(connection_string, SimulatedPlatform(root), state_dir)
await agent.run()
"""

from device_agent.agent import DeviceAgent
from device_agent.errors import AgentError, PermanentError, TemporaryError
from device_agent.firmware import FirmwareUpdater
from device_agent.platforms import CommandPlatform, Platform, RebootRequested, SimulatedPlatform
from device_agent.signatures import TrustStore, UntrustedImage
from device_agent.simulation import SimulatedFleet, run_simulated_device

__all__ = [
    "AgentError",
    "CommandPlatform",
    "DeviceAgent",
    "FirmwareUpdater",
    "PermanentError",
    "Platform",
    "RebootRequested",
    "SimulatedFleet",
    "SimulatedPlatform",
    "TemporaryError",
    "TrustStore",
    "UntrustedImage",
    "run_simulated_device",
]
