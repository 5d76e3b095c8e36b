"""The on-device agent over azure-iot-device: reconciles the device toward its desired twin.

Its API:

- `DeviceAgent(connection_string, platform, state_dir, ...)`: the agent; `run()`, `stop()`,
  `add(handler)`, and the `section(name)` / `method(name)` decorators for plain functions.
- `handlers`: the built-in handlers and the API to write more (`handlers.api`:
  `SectionHandler`, `MethodHandler`, `Agent`, `Invocation`).
- Platforms (the hardware): the `Platform` protocol, `CommandPlatform` (a real Linux device's
  commands), `SimulatedPlatform` (files in a directory); `RebootRequested`.
- `FirmwareUpdater`: the power-loss-safe firmware state machine; `TrustStore` and
  `UntrustedImage` for signed images.
- Simulation: `run_simulated_device`, `SimulatedFleet`.
- Provisioning: `Provisioner` (registers with a DPS and keeps the assignment), `Credentials`
  (what it registers with), `Backoff` (its waits after a refusal).
- Errors: `AgentError` (the root), `PermanentError`, `TemporaryError(delay=...)`,
  `HubRefused` (the hub will not take the device: provision again), `ProvisioningFailed`.

On a device, run it as a command with a settings file (see `device_agent.settings` for the file
and `packaging/twinfleet-agent.service` for the systemd unit)::

    twinfleet-agent --config /etc/twinfleet/agent.toml      # or: python -m device_agent ...

or embed it::

    agent = DeviceAgent(connection_string, SimulatedPlatform(root), state_dir)
    outcome = await agent.run()      # "stopped" or "reboot"

A device may know a provisioning service instead of a hub: `Provisioner` registers it with
`ProvisioningDeviceClient`, keeps the assignment and registers again when the hub refuses the
device (`device_agent.provisioning`; `[connection.provisioning]` in the settings).

The reboot loop. `DeviceAgent.run()` returns "reboot" when a `reboot` direct method or a firmware
update asked the platform to reboot; it has flushed its reported properties first. What happens
next is the host's part, as on a real device:

- `CommandPlatform`: the platform's reboot command (e.g. `systemctl reboot`) takes the device down;
  `twinfleet-agent` waits for the shutdown's SIGTERM (at most `platform.reboot_timeout`), and
  systemd starts it again after the boot. The boot id is recorded before the reboot command runs
  (`device_agent.boots`): started again within the same boot, the agent asks for the reboot again
  rather than mistake the old image for a failed trial.
- `SimulatedPlatform`: its `reboot()` raises `RebootRequested`; `twinfleet-agent` replaces its own
  process with a fresh one (`exec`, same pid) that powers the device on again with
  `SimulatedPlatform.boot()` (the bootloader's part: run the trial slot once, or fall back to the
  old one) and starts a new agent from the persisted state. `run_simulated_device` does the same
  in one process for fleets and tests.

Boot confirmation. After an update, the new image runs on trial. The firmware state machine,
resumed from its persisted state in "rebooting", reads the running version: if it is the new one,
the agent calls `platform.confirm_boot()` (the `confirm_boot` command) only once it has connected
to the hub and read its twin again, so an image that cannot reach the hub is never confirmed and
the bootloader's watchdog falls back to the old slot at the next boot ("rolledback"). If the old
version runs, the trial failed and the device reports "rolledback" with the reason.
"""

from device_agent import handlers
from device_agent.agent import DeviceAgent
from device_agent.errors import (
    AgentError,
    HubRefused,
    PermanentError,
    ProvisioningFailed,
    TemporaryError,
)
from device_agent.firmware import FirmwareUpdater
from device_agent.platforms import CommandPlatform, Platform, RebootRequested, SimulatedPlatform
from device_agent.provisioning import Backoff, Credentials, Provisioner
from device_agent.signatures import TrustStore, UntrustedImage
from device_agent.simulation import SimulatedFleet, run_simulated_device

__all__ = [
    "AgentError",
    "Backoff",
    "CommandPlatform",
    "Credentials",
    "DeviceAgent",
    "FirmwareUpdater",
    "HubRefused",
    "PermanentError",
    "Platform",
    "Provisioner",
    "ProvisioningFailed",
    "RebootRequested",
    "SimulatedFleet",
    "SimulatedPlatform",
    "TemporaryError",
    "TrustStore",
    "UntrustedImage",
    "handlers",
    "run_simulated_device",
]
