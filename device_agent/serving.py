"""One boot of the agent as a service: platform, agent and handlers from the settings, run until
a stop signal or a reboot, with systemd told where it stands.

`serve` returns what the caller (the `twinfleet-agent` command) does next:

- "stopped": SIGTERM or SIGINT arrived (systemd stopping the unit, Ctrl-C); exit 0.
- "reboot": a simulated device asked to reboot; the command boots it again in a fresh process.
- "reboot-timeout": a real device's reboot command returned but the device did not go down within
  `platform.reboot_timeout`; the command exits non-zero and systemd restarts it.

On a real device the reboot command's success does not end the process: the agent keeps pinging
the watchdog and waits for the shutdown's SIGTERM, so that systemd does not restart it into a
device that has not rebooted yet (where it would read the old version as a failed trial boot).
Should it start again within the same boot all the same, `device_agent.boots` notices and asks
for the reboot again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from device_agent import boots, errors, loading, notifying, provisioning, settings
from device_agent.agent import DeviceAgent
from device_agent.platforms import CommandPlatform, Platform, SimulatedPlatform

__all__ = ["connection_source", "make_platform", "serve"]

log = logging.getLogger(__name__)


def make_platform(config: settings.AgentSettings) -> Platform:
    """The platform the settings name (a simulated one is not booted yet)."""
    chosen = config.platform
    if isinstance(chosen, settings.SimulatedPlatformSettings):
        root = chosen.root or config.state_dir / "platform"
        return SimulatedPlatform(root, initial_version=chosen.initial_version)
    return CommandPlatform(
        version=chosen.version, install=chosen.install, reboot=chosen.reboot,
        confirm=chosen.confirm_boot, rollback=chosen.rollback,
        factory_reset=chosen.factory_reset, timeout=chosen.timeout,
    )  # fmt: skip


def _prepare_state_dir(config: settings.AgentSettings) -> None:
    try:
        (config.state_dir / "agent").mkdir(parents=True, exist_ok=True)
        probe = config.state_dir / "agent" / ".writable"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise errors.InvalidSettings(
            f"state_dir: cannot write in {config.state_dir} ({exc.strerror}); create it for the "
            "agent's user or choose another folder",
            field="state_dir",
        ) from None


async def _watchdog(notifier: notifying.Notifier, interval: float) -> None:
    # Pinged from the event loop, so a wedged loop stops the pings and systemd restarts us.
    while True:
        notifier.notify(WATCHDOG="1")
        await asyncio.sleep(interval / 2)


async def _await_shutdown(
    stopping: asyncio.Event, timeout: float, notifier: notifying.Notifier
) -> str:
    log.info("reboot requested: waiting up to %.0f s for the device to go down", timeout)
    notifier.notify(STATUS="waiting for the device to reboot")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout)
    if stopping.is_set():
        return "stopped"
    log.error("the reboot command returned but the device did not reboot within %.0f s; "
              "check platform.reboot", timeout)  # fmt: skip
    return "reboot-timeout"


def connection_source(config: settings.AgentSettings) -> provisioning.ConnectionSource:
    """Where the settings say the connection string comes from: given, or provisioned."""
    chosen = config.connection.provisioning
    if chosen is None:
        return provisioning.FixedConnection(config.device_connection_string(), config.device_id())
    ca_file = config.connection.ca_file
    return provisioning.Provisioner(
        provisioning.Credentials(
            chosen.provisioning_host, chosen.id_scope, chosen.registration_id,
            config.provisioning_key(),
        ),
        config.state_dir / "agent",
        ca_pem=ca_file.read_text() if ca_file else None,
        backoff=provisioning.Backoff(chosen.retry_initial, chosen.retry_max),
    )  # fmt: skip


async def serve(config: settings.AgentSettings, notifier: notifying.Notifier) -> str:
    """Run the agent these settings describe until stopped or rebooted (see the module doc).

    Raises:
        InvalidSettings: the state folder is unusable or a handler cannot be loaded.
        HubRefused: the hub refused a device that is not provisioned (a connection string).
    """
    _prepare_state_dir(config)
    platform = make_platform(config)
    ca_file = config.connection.ca_file
    image_ca = config.image_ca_file()
    tracker: boots.BootTracker | None = None
    if isinstance(config.platform, settings.CommandPlatformSettings):
        tracker = boots.BootTracker(
            config.state_dir / "agent", boots.command_boot_id(config.platform.boot_id)
        )
    source = connection_source(config)

    def make_agent(connection_string: str) -> DeviceAgent:
        agent = DeviceAgent(
            connection_string,
            boots.RecordingPlatform(platform, tracker) if tracker else platform,
            config.state_dir / "agent",
            ca_cert=ca_file.read_text() if ca_file else None,
            image_ca_file=str(image_ca) if image_ca else None,
            max_image_size=config.max_image_size, keep_alive=config.connection.keep_alive,
            trust_store=config.trust.firmware_trust_store,
            security_floor=config.trust.firmware_security_floor,
        )  # fmt: skip
        loading.install_handlers(agent, config.handlers)
        return agent

    for index, reference in enumerate(config.handlers):
        loading.resolve(reference, f"handlers[{index}]")  # a bad name fails now, not later
    if isinstance(platform, SimulatedPlatform):
        platform.boot()  # power-on: the simulated bootloader picks the slot
    version = await asyncio.to_thread(platform.current_version)
    log.info("starting: %s, firmware %s, platform %s", source.description, version,
             config.platform.kind)  # fmt: skip

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    current: list[DeviceAgent] = []

    def stop(signum: int) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        notifier.notify(STOPPING="1", STATUS="stopping")
        stopping.set()
        for agent in current:
            agent.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    helpers: list[asyncio.Task[Any]] = []
    if notifier.watchdog_interval is not None:
        helpers.append(asyncio.create_task(_watchdog(notifier, notifier.watchdog_interval)))
    try:
        if tracker is not None and await asyncio.to_thread(tracker.owed):
            # Started again within the boot that asked for a reboot: ask again, read nothing.
            assert isinstance(config.platform, settings.CommandPlatformSettings)
            log.warning("the reboot requested during this boot has not happened: asking again")
            notifier.notify(READY="1")
            await asyncio.to_thread(platform.reboot)
            return await _await_shutdown(stopping, config.platform.reboot_timeout, notifier)
        notifier.notify(READY="1", STATUS=f"connecting as {source.description}")

        async def session(connection_string: str) -> str:
            if stopping.is_set():
                return "stopped"
            agent = make_agent(connection_string)
            current[:] = [agent]
            try:
                return await _run(agent, connection_string, version, config, stopping, notifier)
            except errors.HubRefused:
                if stopping.is_set():  # stopped while the session was ending: no new one
                    return "stopped"
                raise
            finally:
                current.clear()  # a stop between sessions (backing off) cancels them

        sessions = asyncio.create_task(provisioning.run_sessions(source, session))
        return await _until_stopped(sessions, stopping, current)
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _until_stopped(
    sessions: asyncio.Task[str], stopping: asyncio.Event, current: list[DeviceAgent]
) -> str:
    """What the sessions end with; a stop while no agent is connected (provisioning, backing
    off, retrying the first connection) cancels them instead."""

    async def abandon_connecting() -> None:
        await stopping.wait()
        if not (current and current[0].connected.is_set()):
            sessions.cancel()

    helper = asyncio.create_task(abandon_connecting())
    try:
        return await sessions
    except asyncio.CancelledError:
        if not stopping.is_set():
            raise
        return "stopped"
    finally:
        helper.cancel()
        await asyncio.gather(helper, return_exceptions=True)


async def _run(
    agent: DeviceAgent, connection_string: str, version: str, config: settings.AgentSettings,
    stopping: asyncio.Event, notifier: notifying.Notifier,
) -> str:  # fmt: skip
    device_id = settings.parse_connection_string(connection_string).get("DeviceId", "")
    running = asyncio.create_task(agent.run(), name="agent")

    async def announce() -> None:
        await agent.connected.wait()
        log.info("connected to the hub as %s", device_id)
        notifier.notify(STATUS=f"connected as {device_id}, firmware {version}")

    helper = asyncio.create_task(announce())
    try:
        outcome = await running
        if outcome == "reboot" and isinstance(config.platform, settings.CommandPlatformSettings):
            return await _await_shutdown(stopping, config.platform.reboot_timeout, notifier)
        return "stopped" if stopping.is_set() else outcome
    finally:
        helper.cancel()
        await asyncio.gather(helper, return_exceptions=True)
