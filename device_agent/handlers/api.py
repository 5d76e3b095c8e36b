"""The device's extension API: a handler reconciles one twin section or answers one method.

A **section handler** has a `kind`, the desired `section` it owns, and
`async reconcile(desired, agent)`, called on every connect and after every desired change with
the section's desired value (None when the twin has none: carry on an operation in progress or
report the current state). A **method handler** has a `kind`, the direct `method` it answers,
and `async invoke(call, agent)`, which must answer with `await call.answer(status, payload)` and
may go on working after answering (a reboot answers first, then reboots).

Handlers get the `Agent` they run in: its platform, its state folder, `report()` for reported
properties, `flush()` to wait until reports reached the hub, `reboot()`, `reconnect()` and
`reset_handlers()`. Handlers that keep state on the device may implement `reset(agent)`, which a
factory reset calls.

Handlers come from the built-ins (`device_agent.handlers`), from installed packages through the
entry-point group `twinfleet.handlers` (each names a handler, or a class or factory that makes
one, or a list of them), and from the settings' `handlers` or `twinfleet-agent --app`, as
`module:attribute` (see `device_agent.loading`).

**Choosing the device's key.** A handler may also be a `KeyProvider` (key rotation is one):
before every connection, the first one and each `reconnect()`, the agent asks it for the
symmetric keys to try, tries them in that order until the hub accepts one (the key the settings
give comes last), and tells it which key the hub accepted (`connected`). Keys are secrets: the
agent never logs them, and a provider must not either.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from device_agent import errors
from device_agent.platforms import Platform

__all__ = [
    "ENTRY_POINT_GROUP",
    "Agent",
    "Handler",
    "HandlerError",
    "Invocation",
    "KeyProvider",
    "MethodHandler",
    "SectionHandler",
    "function_method",
    "function_section",
    "handlers_of",
    "installed",
    "is_handler",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "twinfleet.handlers"


class HandlerError(errors.AgentError):
    """A handler could not be loaded."""


class Agent(Protocol):
    """What a handler may use of the agent it runs in."""

    @property
    def platform(self) -> Platform: ...

    @property
    def state_dir(self) -> Path: ...

    @property
    def reported_at_connect(self) -> dict[str, Any]:
        """The reported properties as the hub held them when the agent connected."""
        ...

    def report(self, patch: dict[str, Any]) -> None:
        """Queue a reported-properties patch (delivered and retried in the background)."""
        ...

    async def flush(self, timeout: float) -> bool:
        """Wait until every queued report reached the hub; False on timeout."""
        ...

    def reboot(self) -> None:
        """Stop the agent for a reboot (its host boots and starts it again)."""
        ...

    def going_down(self) -> None:
        """Say the device is about to reboot: from now on the agent answers method calls with
        503 (call again once the device is back online) instead of accepting work that the
        reboot would cut short. Call it before reporting the reboot."""
        ...

    async def reconnect(self) -> None:
        """Close the connection to the hub and connect again, asking the `KeyProvider`s which
        keys to try; returns once connected (the twin is read again, as after any connect).

        Raises:
            AgentError: the hub refused every key (the agent stops).
        """
        ...

    def reset_handlers(self) -> None:
        """Call `reset()` on every handler that has one (after a factory reset)."""
        ...


@dataclass(frozen=True)
class Invocation:
    """A direct-method call: its name, its payload, and how to answer it (once)."""

    name: str
    payload: Any
    answer: Callable[[int, Any], Awaitable[None]]


@runtime_checkable
class SectionHandler(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def section(self) -> str: ...

    async def reconcile(self, desired: Any, agent: Agent) -> None: ...


@runtime_checkable
class MethodHandler(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def method(self) -> str: ...

    async def invoke(self, call: Invocation, agent: Agent) -> None: ...


@runtime_checkable
class KeyProvider(Protocol):
    """What a handler implements, besides its section or method, to choose the device's key."""

    def keys(self, configured: str, agent: Agent) -> list[str]:
        """The base64 symmetric keys to try, best first (`configured`: the settings' key, which
        the agent tries last anyway)."""
        ...

    def connected(self, key: str, agent: Agent) -> None:
        """The hub accepted `key` (one of those offered, or the configured one)."""
        ...


Handler = SectionHandler | MethodHandler


def is_handler(value: object) -> bool:
    """A handler object (not a class) implementing either protocol."""
    return not inspect.isclass(value) and isinstance(value, SectionHandler | MethodHandler)


def handlers_of(value: Any, where: str) -> list[Handler]:
    """Handlers from what a module or entry point names: a handler, a class or zero-argument
    factory making one, or an iterable of those.

    Raises:
        HandlerError: `value` is none of these (named by `where`).
    """
    if is_handler(value):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [h for item in value for h in handlers_of(item, where)]
    if callable(value):
        try:
            made = value()
        except Exception as exc:
            raise HandlerError(f"{where}: making the handler failed: {exc!r}") from exc
        if made is not value:
            return handlers_of(made, where)
    raise HandlerError(
        f"{where} is not a handler: a handler has kind and section+reconcile or method+invoke "
        f"(see device_agent.handlers.api), or is a class, factory or list of them."
    )


def installed(group: str = ENTRY_POINT_GROUP) -> list[Handler]:
    """Fresh handlers from every entry point of installed packages in `group`.

    Raises:
        HandlerError: an entry point fails to load (named in the error).
    """
    found: list[Handler] = []
    for entry in importlib.metadata.entry_points(group=group):
        where = f"handler entry point {entry.name!r} ({entry.value})"
        try:
            loaded = entry.load()
        except Exception as exc:
            raise HandlerError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
        found.extend(handlers_of(loaded, where))
    return found


# -- plain functions as handlers (the agent's `section` and `method` decorators) ----------------

SectionFunction = Callable[[dict[str, Any]], dict[str, Any] | None]
MethodFunction = Callable[[Any], tuple[int, Any]]


class _FunctionSection:
    def __init__(self, section: str, function: SectionFunction) -> None:
        self.kind = self.section = section
        self._function = function
        self._applied: Any = None  # the desired value the function last returned for

    async def reconcile(self, desired: Any, agent: Agent) -> None:
        if desired is None or desired == self._applied:
            return  # the agent reconciles every section on any change: this one is unchanged
        reported = await asyncio.to_thread(self._function, desired)
        self._applied = desired
        if reported is not None:
            agent.report({self.section: reported})


class _FunctionMethod:
    def __init__(self, method: str, function: MethodFunction) -> None:
        self.kind = self.method = method
        self._function = function

    async def invoke(self, call: Invocation, agent: Agent) -> None:
        status, result = await asyncio.to_thread(self._function, call.payload)
        await call.answer(status, result)


def function_section(section: str, function: SectionFunction) -> SectionHandler:
    """A section handler from a blocking function of the desired section that returns what to
    report there (or None); it runs in a worker thread, when the section is in desired and
    differs from the value it last ran for (once per value while the agent runs; again after
    a restart, as the agent reads the whole twin on every start). If it raises, the error is
    logged and it runs again on the next desired change."""
    return _FunctionSection(section, function)


def function_method(method: str, function: MethodFunction) -> MethodHandler:
    """A method handler from a blocking function of the payload returning (status, payload)."""
    return _FunctionMethod(method, function)
