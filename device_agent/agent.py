"""`DeviceAgent`: reconciles a device toward its desired twin and reports every step.

Reconciliation is level-triggered: on every connect the agent reads the whole twin and
reconciles each section; a desired patch merges into its copy of desired and runs the same code.
Patches arrive with `$version`; one not newer than what the agent has is a no-op, and so is a
section whose desired state is already reached. One worker reconciles at a time, always from the
latest desired state. Sections are handled by handlers (firmware and configuration built in,
more registered with `section`); direct methods likewise (`reboot` and `factoryReset` built in,
more with `method`).

What arrives from the hub is untrusted input too: the device SDK parses desired patches and
method payloads itself, and the agent checks each value against `INPUT_LIMITS` (size, nesting of
arrays and objects, number length, valid Unicode) before any handler walks it. A refused patch
is dropped with one log line (the agent keeps the desired state it had, and catches up on the
next full twin read); a refused method payload is answered with status 400 naming the problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import jsonlimits
from device_agent import errors
from device_agent._client import DeviceConnection, MethodCall
from device_agent.firmware import FirmwareUpdater
from device_agent.persistence import StateFile
from device_agent.platforms import Platform, RebootRequested
from device_agent.reporting import Reporter, merge
from device_agent.signatures import TrustStore
from patterns.contracts import (
    FACTORY_RESET,
    REBOOT,
    ConfigurationDesired,
    ConfigurationStatus,
    FactoryResetPayload,
    FactoryResetStatus,
    FirmwareDesired,
    FirmwareStatus,
    RebootPayload,
)

__all__ = ["DeviceAgent", "MethodHandler", "SectionHandler"]

log = logging.getLogger(__name__)

SectionHandler = Callable[[dict[str, Any]], dict[str, Any] | None]
MethodHandler = Callable[[Any], tuple[int, Any]]
Configure = Callable[[dict[str, Any]], None]


# IoT Hub caps desired at 32 KB and method payloads at 128 KB; a twin section is at most ten
# levels deep below its name.
INPUT_LIMITS = jsonlimits.Limits(max_bytes=256 * 1024, max_depth=32, max_number_chars=100)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


class DeviceAgent:
    """The agent of one device.

    Args:
        connection_string: the device's connection string.
        platform: the hardware (SimulatedPlatform, CommandPlatform, or your own).
        state_dir: where the agent keeps its state across restarts and reboots.
        ca_cert: PEM text of a CA to trust for the hub (the local hub's), if any.
        configure: applies desired `configuration` settings; raise to report an error.
        max_image_size: the largest firmware image accepted, in bytes.
        image_ca_file: a CA file to trust for https firmware URLs.
        trust_store: a directory of public keys; when given, only firmware images signed by
            one of them are installed.
        security_floor: the lowest firmware version this device may ever run.
    """

    def __init__(
        self, connection_string: str, platform: Platform, state_dir: Path, *,
        ca_cert: str | None = None, configure: Configure | None = None,
        max_image_size: int = 512 * 1024 * 1024, image_ca_file: str | None = None,
        keep_alive: int = 60, trust_store: Path | None = None, security_floor: str | None = None,
    ) -> None:  # fmt: skip
        self.platform = platform
        self.state_dir = Path(state_dir)
        self._connection_string = connection_string
        self._ca_cert = ca_cert
        self._keep_alive = keep_alive
        self._trust_store = TrustStore.load(trust_store) if trust_store is not None else None
        self._security_floor = security_floor
        self._configure = configure
        self._config_state = StateFile(self.state_dir / "configuration.json")
        self._sections: dict[str, SectionHandler] = {}
        self._methods: dict[str, MethodHandler] = {}
        self._desired: dict[str, Any] = {}
        self._desired_version = -1
        self._changed = asyncio.Event()
        self._stopped = asyncio.Event()
        self.connected = asyncio.Event()  # set once the first connection succeeded
        self.outcome: str | None = None
        self._reporter: Reporter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._max_image_size = max_image_size
        self._image_ca_file = image_ca_file
        self.firmware: FirmwareUpdater | None = None

    # -- extension API ---------------------------------------------------------------------

    def section(self, name: str) -> Callable[[SectionHandler], SectionHandler]:
        """Register a handler for desired section `name`; what it returns is reported there."""

        def register(handler: SectionHandler) -> SectionHandler:
            self._sections[name] = handler
            return handler

        return register

    def method(self, name: str) -> Callable[[MethodHandler], MethodHandler]:
        """Register a direct-method handler returning (status, payload)."""

        def register(handler: MethodHandler) -> MethodHandler:
            self._methods[name] = handler
            return handler

        return register

    # -- running ---------------------------------------------------------------------------

    def report(self, patch: dict[str, Any]) -> None:
        """Queue a reported patch; safe from any thread."""
        loop, reporter = self._loop, self._reporter
        if loop is None or reporter is None:
            return
        if threading.get_ident() == self._loop_thread:
            reporter.report(patch)
        else:
            loop.call_soon_threadsafe(reporter.report, patch)

    async def run(self) -> str:
        """Connect and reconcile until `stop()` or a reboot; returns "stopped" or "reboot".

        On "reboot" the platform's reboot was requested: a real device goes down; a simulated
        one is booted again (`SimulatedPlatform.boot()`) and a fresh agent run on it.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        connection = DeviceConnection(
            self._connection_string, self._ca_cert, keep_alive=self._keep_alive
        )
        self._reporter = Reporter(connection.patch_reported)
        self.firmware = FirmwareUpdater(
            self.platform, self.state_dir, self.report, max_image_size=self._max_image_size,
            ca_file=self._image_ca_file, trust_store=self._trust_store,
            security_floor=self._security_floor,
        )  # fmt: skip
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self._connect(connection)
            self.connected.set()
            connection.on_desired(self._loop, self._on_patch)
            connection.on_method(
                self._loop, lambda call: self._spawn(tasks, self._on_method(connection, call))
            )
            tasks.append(asyncio.create_task(self._reporter.run(), name="reporter"))
            tasks.append(asyncio.create_task(self._reconciler(), name="reconciler"))
            twin = await connection.get_twin()
            self._on_twin(twin.get("desired", {}))
            await self._stopped.wait()
            if self.outcome == "reboot":
                await self._reporter.flush(5)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await connection.shutdown()
        return self.outcome or "stopped"

    async def _connect(self, connection: DeviceConnection) -> None:
        delay = 1.0
        while True:
            try:
                await connection.connect()
                return
            except Exception as exc:
                if "Credential" in type(exc).__name__:
                    raise
                log.warning("connecting failed (%s); retrying in %.0f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(60.0, delay * 2)

    def stop(self, outcome: str = "stopped") -> None:
        """Stop the agent (from its loop)."""
        self.outcome = self.outcome or outcome
        self._stopped.set()

    @staticmethod
    def _spawn(tasks: list[asyncio.Task[Any]], coroutine: Any) -> None:
        tasks.append(asyncio.get_running_loop().create_task(coroutine))

    # -- desired state ---------------------------------------------------------------------

    def _on_twin(self, desired: dict[str, Any]) -> None:
        if not self._acceptable("the desired properties", desired):
            return
        self._desired = {k: v for k, v in desired.items() if k != "$version"}
        self._desired_version = int(desired.get("$version", 0))
        self._changed.set()

    def _on_patch(self, patch: dict[str, Any]) -> None:
        if not self._acceptable("a desired patch", patch):
            return
        version = int(patch.get("$version", 0))
        if version <= self._desired_version:
            return  # stale or repeated
        body = {k: v for k, v in patch.items() if k != "$version"}
        self._desired = {k: v for k, v in merge(self._desired, body).items() if v is not None}
        self._desired_version = version
        self._changed.set()

    @staticmethod
    def _acceptable(what: str, value: Any) -> bool:
        try:
            jsonlimits.check(value, INPUT_LIMITS)
        except jsonlimits.JSONRefused as exc:
            log.warning("refused %s from the hub: %s", what, exc.reason)
            return False
        if not isinstance(value, dict):
            log.warning("refused %s from the hub: it is not a JSON object", what)
            return False
        return True

    async def _reconciler(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            desired = dict(self._desired)
            try:
                await self._reconcile(desired)
            except RebootRequested:
                self.stop("reboot")
                return
            except errors.TemporaryError as exc:
                log.info("reconcile will be retried: %s", exc)
                await asyncio.sleep(exc.delay)
                self._changed.set()

    async def _reconcile(self, desired: dict[str, Any]) -> None:
        await self._reconcile_firmware(desired.get("firmware"))
        await self._reconcile_configuration(desired.get("configuration"))
        for name, handler in self._sections.items():
            if name in desired:
                reported = await asyncio.to_thread(handler, desired[name])
                if reported is not None:
                    self.report({name: reported})

    async def _reconcile_firmware(self, section: Any) -> None:
        assert self.firmware is not None
        target: FirmwareDesired | None = None
        if section is not None:
            try:
                target = FirmwareDesired.model_validate(section)
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"])
                reason = f"invalid desired firmware: {where}: {problem['msg']}"
                self.report(
                    {
                        "firmware": {
                            "fwUpdateStatus": FirmwareStatus.ERROR.value,
                            "fwUpdateSubstatus": reason,
                            "currentFwVersion": self.platform.current_version(),
                        }
                    }
                )
                return
        await asyncio.to_thread(self.firmware.reconcile, target)

    async def _reconcile_configuration(self, section: Any) -> None:
        if section is None:
            return
        try:
            desired = ConfigurationDesired.model_validate(section)
        except ValidationError:
            self.report(
                {"configuration": {"status": "error", "error": "invalid desired configuration"}}
            )
            return
        saved = self._config_state.load()
        if saved.get("version") == desired.version and saved.get("status") == "applied":
            self.report({"configuration": saved})
            return
        self.report(
            {"configuration": {"version": desired.version, "status": "pending", "error": None}}
        )
        try:
            if self._configure is not None:
                await asyncio.to_thread(self._configure, desired.settings)
            outcome = {
                "version": desired.version,
                "status": ConfigurationStatus.APPLIED.value,
                "error": None,
                "settings": desired.settings,
            }
        except Exception as exc:
            outcome = {
                "version": desired.version,
                "status": ConfigurationStatus.ERROR.value,
                "error": str(exc),
            }
        self._config_state.save(outcome)
        self.report({"configuration": outcome})

    # -- methods ---------------------------------------------------------------------------

    async def _on_method(self, connection: DeviceConnection, call: MethodCall) -> None:
        try:
            jsonlimits.check(call.payload, INPUT_LIMITS)
        except jsonlimits.JSONRefused as exc:
            log.warning("refused the payload of method %r: %s", call.name, exc.reason)
            await connection.answer(call, 400, {"error": f"the payload was refused: {exc.reason}"})
            return
        try:
            if call.name == REBOOT:
                payload = RebootPayload.model_validate(call.payload or {})
                await connection.answer(call, 200, {"accepted": True, "delay": payload.delay})
                await asyncio.sleep(payload.delay)
                self.report({"reboot": {"lastReboot": _now()}})
                assert self._reporter is not None
                await self._reporter.flush(10)
                try:
                    self.platform.reboot()
                except RebootRequested:
                    pass
                self.stop("reboot")
            elif call.name == FACTORY_RESET:
                reset = FactoryResetPayload.model_validate(call.payload or {})
                await connection.answer(call, 200, {"accepted": True, "delay": reset.delay})
                await asyncio.sleep(reset.delay)
                self.report({"factoryReset": {"status": FactoryResetStatus.IN_PROGRESS.value}})
                await asyncio.to_thread(self.platform.factory_reset)
                self._config_state.clear()
                self.report({"factoryReset": {"status": FactoryResetStatus.COMPLETED.value,
                                              "lastFactoryReset": _now()}})  # fmt: skip
            elif call.name in self._methods:
                status, result = await asyncio.to_thread(self._methods[call.name], call.payload)
                await connection.answer(call, status, result)
            else:
                await connection.answer(call, 404, {"error": f"no method named {call.name!r}"})
        except ValidationError as exc:
            await connection.answer(call, 400, {"error": str(exc.errors()[0]["msg"])})
