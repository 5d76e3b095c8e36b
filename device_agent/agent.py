"""`DeviceAgent`: reconciles a device toward its desired twin and reports every step.

Reconciliation is level-triggered: on every connect the agent reads the whole twin and
reconciles each section; a desired patch merges into its copy of desired and runs the same code.
Patches arrive with `$version`; one not newer than what the agent has is a no-op, and so is a
section whose desired state is already reached. One worker reconciles at a time, always from the
latest desired state.

Sections and direct methods are handled by handlers (`device_agent.handlers`): the built-ins
(firmware, configuration, reboot, factoryReset), those installed packages declare in the entry
point group `twinfleet.handlers`, those passed as `handlers=`, and functions registered with the
`section` and `method` decorators, each later one replacing an earlier one of the same kind.
A handler may also choose which key the agent connects with (`handlers.api.KeyProvider`, as key
rotation does): at start and at every `reconnect()` the agent tries the keys it offers, then the
configured one, and reads the whole twin again once connected.

What arrives from the hub is untrusted input too: the device SDK parses desired patches and
method payloads itself, and the agent checks each value against `INPUT_LIMITS` (size, nesting of
arrays and objects, number length, valid Unicode) before any handler walks it. A refused patch
is dropped with one log line (the agent keeps the desired state it had, and catches up on the
next full twin read); a refused method payload is answered with status 400 naming the problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jsonlimits
from device_agent import errors
from device_agent._client import DeviceConnection, MethodCall
from device_agent.handlers import api as handlers_api
from device_agent.handlers.configuration import ConfigurationHandler, Configure
from device_agent.handlers.diagnostics import DiagnosticsHandler
from device_agent.handlers.factory_reset import FactoryResetHandler
from device_agent.handlers.firmware import FirmwareHandler
from device_agent.handlers.reboot import RebootHandler
from device_agent.platforms import Platform, RebootRequested
from device_agent.reporting import Reporter
from device_agent.signatures import TrustStore
from patterns.contracts import patches

__all__ = ["DeviceAgent", "MethodFunction", "SectionFunction"]

log = logging.getLogger(__name__)

UNHANDLED_SECTION = "agent"  # reported: what the agent itself says about the twin
# A method call's answer (503) while the agent is going down.
GOING_DOWN = (
    "the device is going down (rebooting or stopping) and would not finish this call; call the "
    "method again once the device is back online"
)

# IoT Hub caps desired at 32 KB and method payloads at 128 KB; a twin section is at most ten
# levels deep below its name.
INPUT_LIMITS = jsonlimits.Limits(max_bytes=256 * 1024, max_depth=32, max_number_chars=100)
SectionFunction = handlers_api.SectionFunction
MethodFunction = handlers_api.MethodFunction


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
        handlers: more handlers (they replace built-in or installed ones of the same kind).
        installed: also load the handlers of the `twinfleet.handlers` entry points.
        trust_store: a directory of public keys; when given, only firmware images signed by
            one of them are installed.
        security_floor: the lowest firmware version this device may ever run.
    """

    def __init__(
        self, connection_string: str, platform: Platform, state_dir: Path, *,
        ca_cert: str | None = None, configure: Configure | None = None,
        max_image_size: int = 512 * 1024 * 1024, image_ca_file: str | None = None,
        keep_alive: int = 60, handlers: Iterable[handlers_api.Handler] = (),
        installed: bool = True, trust_store: Path | None = None,
        security_floor: str | None = None,
    ) -> None:  # fmt: skip
        self._platform = platform
        self._state_dir = Path(state_dir)
        self._connection_string = connection_string
        self._ca_cert = ca_cert
        self._keep_alive = keep_alive
        self._handlers: dict[str, handlers_api.Handler] = {}
        builtin: list[handlers_api.Handler] = [
            FirmwareHandler(
                max_image_size=max_image_size, ca_file=image_ca_file,
                trust_store=TrustStore.load(trust_store) if trust_store is not None else None,
                security_floor=security_floor,
            ),
            ConfigurationHandler(configure), RebootHandler(), FactoryResetHandler(),
            DiagnosticsHandler(ca_file=image_ca_file),
        ]  # fmt: skip
        for handler in [*builtin, *(handlers_api.installed() if installed else ()), *handlers]:
            self.add(handler)
        self._desired: dict[str, Any] = {}
        self._reported: dict[str, Any] = {}
        self._desired_version = -1
        self._unhandled: list[str] | None = None  # last reported; None: not yet this run
        self._changed = asyncio.Event()
        self._stopped = asyncio.Event()
        self.connected = asyncio.Event()  # set once the first connection succeeded
        self.outcome: str | None = None
        self._going_down = False  # a reboot is coming: method calls are refused
        self._failure: Exception | None = None  # what ended the session, if it failed
        self._reporter: Reporter | None = None
        self._connection: DeviceConnection | None = None
        self._ready = asyncio.Event()  # set while a connection is up
        self._reconnecting = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    # -- what handlers see (handlers_api.Agent) --------------------------------------------

    @property
    def platform(self) -> Platform:
        return self._platform

    @property
    def state_dir(self) -> Path:
        return self._state_dir

    @property
    def reported_at_connect(self) -> dict[str, Any]:
        """The reported properties as the hub held them when the agent connected."""
        return self._reported

    def report(self, patch: dict[str, Any]) -> None:
        """Queue a reported patch; safe from any thread."""
        loop, reporter = self._loop, self._reporter
        if loop is None or reporter is None:
            return
        if threading.get_ident() == self._loop_thread:
            reporter.report(patch)
        else:
            loop.call_soon_threadsafe(reporter.report, patch)

    async def flush(self, timeout: float) -> bool:
        """Wait until queued reports reached the hub (on the agent's loop)."""
        return self._reporter is None or await self._reporter.flush(timeout)

    def reboot(self) -> None:
        self.stop("reboot")

    def going_down(self) -> None:
        self._going_down = True

    def reset_handlers(self) -> None:
        for handler in self._handlers.values():
            reset = getattr(handler, "reset", None)
            if callable(reset):
                reset(self)

    # -- extension API ---------------------------------------------------------------------

    def add(self, handler: handlers_api.Handler) -> None:
        """Add a handler; it replaces the one of the same kind, if any.

        Raises:
            HandlerError: `handler` is neither a section nor a method handler.
        """
        if not isinstance(handler, handlers_api.SectionHandler | handlers_api.MethodHandler):
            raise handlers_api.HandlerError(f"{handler!r} is not a handler")
        self._handlers[handler.kind] = handler

    @property
    def handlers(self) -> dict[str, handlers_api.Handler]:
        """The handlers by kind."""
        return dict(self._handlers)

    def section(self, name: str) -> Callable[[SectionFunction], SectionFunction]:
        """Register a function for desired section `name`; what it returns is reported there.

        The function is `def handler(desired: dict[str, Any]) -> dict[str, Any] | None`: given
        the section's desired value, it applies it (in a worker thread, so blocking I/O is fine)
        and returns the section's reported value, or None to report nothing. It runs once per
        distinct desired value (see `handlers.api.function_section`)::

            @agent.section("leds")
            def leds(desired):
                set_color(desired["color"])
                return {"color": desired["color"]}
        """

        def register(function: SectionFunction) -> SectionFunction:
            self.add(handlers_api.function_section(name, function))
            return function

        return register

    def method(self, name: str) -> Callable[[MethodFunction], MethodFunction]:
        """Register a direct-method function returning (status, payload).

        The function is `def handler(payload: Any) -> tuple[int, Any]`: given the call's
        payload, it returns the status (200 for success) and the answer's payload; it runs in a
        worker thread::

            @agent.method("blink")
            def blink(payload):
                return 200, {"blinked": payload["times"]}
        """

        def register(function: MethodFunction) -> MethodFunction:
            self.add(handlers_api.function_method(name, function))
            return function

        return register

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> str:
        """Connect and reconcile until `stop()` or a reboot; returns "stopped" or "reboot".

        On "reboot" the platform's reboot was requested: a real device goes down; a simulated
        one is booted again (`SimulatedPlatform.boot()`) and a fresh agent run on it.

        Raises:
            HubRefused: the hub refused the device's credentials (every key it had) at the first
                connect, or its reconnection after it dropped the device
                (`device_agent.provisioning` then provisions the device again and runs a fresh
                agent).
            AgentError: the hub refused every key the agent had after a `reconnect()`.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._reporter = Reporter(self._send_report)
        try:
            await self._open()
            self.connected.set()
            self._tasks.append(asyncio.create_task(self._reporter.run(), name="reporter"))
            self._tasks.append(asyncio.create_task(self._reconciler(), name="reconciler"))
            # Read the twin beside the stop: a hub refusing the device right after it connected
            # ends the session at once rather than after the SDK's twin request times out.
            self._tasks.append(asyncio.create_task(self._first_twin(), name="twin"))
            await self._stopped.wait()
            if self._failure is not None and self.outcome == "failed":
                raise self._failure
            if self.outcome == "reboot":
                await self._reporter.flush(5)
            if self.outcome == "refused":
                raise errors.HubRefused(
                    "the hub dropped the device and refused its reconnection (its identity was "
                    "deleted or disabled, or it was moved to another hub)",
                    after_connect=True,
                )
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    await self._connection.shutdown()
        return self.outcome or "stopped"

    async def reconnect(self) -> None:
        """Close the connection and connect again (see `handlers.api.Agent.reconnect`).

        Raises:
            AgentError: the hub refused every key; the agent stops with this error.
        """
        async with self._reconnecting:
            self._ready.clear()
            old, self._connection = self._connection, None
            if old is not None:
                with contextlib.suppress(Exception):
                    await old.shutdown()
            try:
                await self._open()
            except Exception as exc:
                self._failure = errors.AgentError(
                    f"reconnecting failed: the hub refused every key of this device "
                    f"({type(exc).__name__}); give the agent a valid key"
                )
                self.stop("failed")
                raise self._failure from exc
            await self._read_twin()

    async def _open(self) -> None:
        """Connect with the first key the hub accepts: the `KeyProvider`s' keys in order, then
        the configured one; tell the providers which it was."""
        configured = _key_of(self._connection_string)
        providers = [h for h in self._handlers.values() if isinstance(h, handlers_api.KeyProvider)]
        offered: list[str] = []
        if configured is not None:
            for provider in providers:
                try:
                    offered += provider.keys(configured, self)
                except Exception:
                    log.exception("the %s handler failed to offer keys", provider.kind)
            offered.append(configured)
        candidates: list[str | None] = [*dict.fromkeys(offered)] or [None]
        for number, key in enumerate(candidates, 1):
            text = (
                self._connection_string if key is None else _with_key(self._connection_string, key)
            )
            connection = DeviceConnection(text, self._ca_cert, keep_alive=self._keep_alive)
            try:
                await self._connect(connection)
            except Exception:
                with contextlib.suppress(Exception):
                    await connection.shutdown()
                if number == len(candidates):
                    raise
                log.warning("the hub refused key %d of %d; trying the next", number,
                            len(candidates))  # fmt: skip
                continue
            assert self._loop is not None
            self._connection = connection
            connection.on_refused(self._loop, self._on_refused)
            await self._subscribe_again_after_drops(connection)
            self._ready.set()
            if key is not None:
                for provider in providers:
                    try:
                        provider.connected(key, self)
                    except Exception:
                        log.exception("the %s handler failed after connecting", provider.kind)
            return

    async def _read_twin(self) -> None:
        assert self._connection is not None
        twin = await self._connection.get_twin()
        self._reported = dict(twin.get("reported") or {})
        self._on_twin(twin.get("desired", {}))

    async def _send_report(self, patch: dict[str, Any]) -> None:
        await self._ready.wait()  # not on a connection being replaced
        assert self._connection is not None
        await self._connection.patch_reported(patch)

    async def _connect(self, connection: DeviceConnection) -> None:
        delay = 1.0
        while True:
            try:
                await connection.connect()
                return
            except errors.HubRefused:
                raise
            except Exception as exc:
                log.warning("connecting failed (%s); retrying in %.0f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(60.0, delay * 2)

    async def _subscribe(self, connection: DeviceConnection) -> None:
        """Subscribe to desired patches and methods, unless the session ends first (a hub that
        refuses the device right after it connected leaves the SDK's subscription waiting for
        its timeout; the session need not wait with it).

        Raises:
            HubRefused: the hub dropped the device before the subscriptions were made.
        """

        async def subscribe() -> None:
            assert self._loop is not None
            await connection.on_desired(self._loop, self._on_patch)
            await connection.on_method(
                self._loop, functools.partial(self._spawn_method, connection)
            )

        subscribing = asyncio.create_task(subscribe(), name="subscribe")
        ended = asyncio.create_task(self._stopped.wait(), name="ended")
        try:
            await asyncio.wait({subscribing, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            self._tasks.append(ended)
            if not subscribing.done():
                subscribing.cancel()
                self._tasks.append(subscribing)  # gathered when the session ends
        if subscribing.done() and not subscribing.cancelled():
            subscribing.result()

    async def _subscribe_again_after_drops(self, connection: DeviceConnection) -> None:
        """`_subscribe`, and again after connecting again when the connection was lost between
        the CONNACK and the subscriptions (the SDK raises then, and does not subscribe again by
        itself). A hub that refuses the device says so when it connects again (`HubRefused`).
        """
        delay = 1.0
        while True:
            try:
                await self._subscribe(connection)
                return
            except errors.HubRefused:
                if self._stopped.is_set():
                    raise
                log.warning("the connection was lost as the agent subscribed; connecting "
                            "again in %.0f s", delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(60.0, delay * 2)
            await self._connect(connection)

    async def _first_twin(self) -> None:
        """The session's first twin read; a refusal or failure ends the session. A read the
        connection broke under is made again once it is back (the hub dropping a deleted
        device mid-read ends the session as a refusal, seen by the connection)."""
        delay = 1.0
        while not self._stopped.is_set():
            try:
                await self._read_twin()
                return
            except errors.HubRefused:
                self._on_refused()
            except errors.ConnectionLost as exc:
                log.warning("%s; reading it again in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(60.0, delay * 2)
                continue
            except Exception as exc:
                if self.outcome is None:  # not already ending (a refusal, a stop)
                    self._failure = exc
                    self.stop("failed")
            return

    def _on_refused(self) -> None:
        log.warning("the hub refused the device's reconnection")
        self.stop("refused")

    def stop(self, outcome: str = "stopped") -> None:
        """Stop the agent (from its loop)."""
        self.outcome = self.outcome or outcome
        self._stopped.set()

    def _spawn_method(self, connection: DeviceConnection, call: MethodCall) -> None:
        self._spawn(self._tasks, self._on_method(connection, call))

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
        self._desired = patches.applied(self._desired, body)  # a null removes, as in the hub
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
        self._report_unhandled(desired)
        for handler in list(self._handlers.values()):
            if not isinstance(handler, handlers_api.SectionHandler):
                continue
            try:
                await handler.reconcile(desired.get(handler.section), self)
            except (RebootRequested, errors.TemporaryError):
                raise
            except Exception:
                log.exception("the %s handler failed on section %r", handler.kind, handler.section)

    def _report_unhandled(self, desired: dict[str, Any]) -> None:
        """Say which desired sections no handler covers: a warning in the log and
        `agent.unhandledSections` in reported properties, so the back end sees that a section it
        set will never be applied by this device (a typo, or a handler not installed)."""
        sections = {
            h.section for h in self._handlers.values() if isinstance(h, handlers_api.SectionHandler)
        }
        unhandled = sorted(k for k in desired if not k.startswith("$") and k not in sections)
        if unhandled == self._unhandled:
            return
        if unhandled:
            log.warning(
                "no handler for desired section(s) %s; they are reported as unhandled",
                ", ".join(map(repr, unhandled)),
            )
        before = self._unhandled
        if before is None:  # first pass of this run: what the twin says from the last one
            before = (self.reported_at_connect.get(UNHANDLED_SECTION) or {}).get(
                "unhandledSections"
            ) or []
        if unhandled != before:
            self.report(
                {UNHANDLED_SECTION: {"unhandledSections": unhandled} if unhandled else None}
            )
        self._unhandled = unhandled

    # -- methods ---------------------------------------------------------------------------

    async def _on_method(self, connection: DeviceConnection, call: MethodCall) -> None:
        try:
            jsonlimits.check(call.payload, INPUT_LIMITS)
        except jsonlimits.JSONRefused as exc:
            log.warning("refused the payload of method %r: %s", call.name, exc.reason)
            await connection.answer(call, 400, {"error": f"the payload was refused: {exc.reason}"})
            return
        handler = next(
            (h for h in self._handlers.values()
             if isinstance(h, handlers_api.MethodHandler) and h.method == call.name),
            None,
        )  # fmt: skip
        if handler is None:
            await connection.answer(call, 404, {"error": f"no method named {call.name!r}"})
            return
        if self._going_down or self.outcome is not None:
            # Accepting now would be a lie: the reboot or stop cancels the handler mid-way.
            log.info("refused method %r: the device is going down", call.name)
            await connection.answer(call, 503, {"error": GOING_DOWN})
            return
        answered = False

        async def answer(status: int, payload: Any) -> None:
            nonlocal answered
            if answered:
                raise RuntimeError(f"method {call.name!r} was answered already")
            answered = True
            await connection.answer(call, status, payload)

        try:
            await handler.invoke(handlers_api.Invocation(call.name, call.payload, answer), self)
        except Exception as exc:
            log.exception("the %s handler failed on method %r", handler.kind, call.name)
            if not answered:
                await connection.answer(call, 500, {"error": f"{type(exc).__name__}: {exc}"})


def _key_of(connection_string: str) -> str | None:
    """The connection string's SharedAccessKey (None for one without: X.509, a SAS token)."""
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip() == "SharedAccessKey" and value.strip():
            return value.strip()
    return None


def _with_key(connection_string: str, key: str) -> str:
    """The connection string with its SharedAccessKey replaced by `key`."""
    parts = connection_string.split(";")
    return ";".join(
        f"SharedAccessKey={key}" if p.partition("=")[0].strip() == "SharedAccessKey" else p
        for p in parts
    )
