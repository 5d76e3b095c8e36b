"""The back end's extension API: a pattern is one object, found in a registry by its kind.

A pattern says what a campaign does to one device and how to tell from the device's twin how
that went. It has:

- `kind`: its name (`firmware`, `keyRotation`, ...), the key of the registry and of stored specs;
- `params`: a pydantic model (a subclass of `Params`) of what one campaign of it is given;
  campaigns store it in the hub as JSON and read it back through this model;
- `apply(params, device)`: start the pattern on one device (write a desired section, call a
  direct method, ...); returns a `Verdict`, usually `in progress`;
- `outcome(params, device)`: read the device's outcome of *this attempt* from its twin;
- `rollback(params)`: what to apply to a device when an aborted campaign rolls back (or None).

A pattern whose `apply` only writes desired properties may also have `desired(params, device)`
(`DesiredPatch`), returning that patch (or None to have `apply` run): the controller then writes
it in the same request as the device's claim, one write instead of two, and a hundred devices to
a request where the hub's quota allows bulk writes (`patterns.campaigns.writes`).

`device` is a `Device`: the hub (`fleet`), the device id, its twin as the controller last read it,
and the `Attempt`: which campaign step and which try this is. A pattern writes `attempt.tag`
where the device echoes it (a desired section's or a payload's `campaignId`) and trusts reported
state only when it carries that tag, so a re-run or a retry never reads an earlier try's result.

Patterns come from the built-ins (`patterns.builtin`) and from installed packages that declare
an entry point in the group `twinfleet.patterns` naming a pattern object (or a class or factory
that makes one):

    [project.entry-points."twinfleet.patterns"]
    schedule = "my_patterns.schedule:pattern"

The built-ins use nothing but this module and the contract models, as a user's pattern would.
"""

from __future__ import annotations

import enum
import functools
import importlib.metadata
import inspect
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from twin_manager import HubError, Throttled, TwinManager

__all__ = [
    "ENTRY_POINT_GROUP",
    "Attempt",
    "DesiredPatch",
    "Device",
    "Outcome",
    "Params",
    "Pattern",
    "PatternError",
    "Registry",
    "UnknownPattern",
    "Verdict",
    "invoke",
    "registry",
]

MAX_REASON = 1000  # characters of a failure reason kept in a device's campaign tag

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "twinfleet.patterns"


class PatternError(Exception):
    """A pattern could not be loaded or registered."""


class UnknownPattern(PatternError, ValueError):
    """No pattern of that kind is installed."""

    def __init__(self, kind: str, known: list[str]) -> None:
        super().__init__(
            f"No pattern of kind {kind!r} is installed (installed: {', '.join(known) or 'none'}); "
            f"install the package that provides it, or check the spelling."
        )
        self.kind = kind


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    IN_PROGRESS = "inProgress"


@dataclass(frozen=True)
class Verdict:
    """What a pattern says of one device: its outcome, on failure why, and optionally a `note`
    for the campaign's log (what was done, by whom, when)."""

    outcome: Outcome
    reason: str = ""
    note: str = ""

    @classmethod
    def succeeded(cls, note: str = "") -> Verdict:
        return cls(Outcome.SUCCEEDED, note=note)

    @classmethod
    def in_progress(cls) -> Verdict:
        return cls(Outcome.IN_PROGRESS)

    @classmethod
    def failed(cls, reason: str) -> Verdict:
        """A failure and why, kept whole up to `MAX_REASON` characters (a twin's tags are
        capped at 8 KB, and the reason is stored in one)."""
        if len(reason) > MAX_REASON:
            reason = reason[: MAX_REASON - 1] + "…"
        return cls(Outcome.FAILED, reason)


@dataclass(frozen=True)
class Attempt:
    """One try of one campaign step on one device.

    Attributes:
        step_id: the campaign id, with `.N` for its N-th extra step.
        number: counts every try on this device, re-runs included; never reused.
        admitted_at: when this try started, ISO-8601 UTC.
    """

    step_id: str
    number: int
    admitted_at: str

    @property
    def tag(self) -> str:
        """What the device echoes (as `campaignId`) in reports that answer this try."""
        return f"{self.step_id}:{self.number}"


@dataclass(frozen=True)
class Device:
    """One device as a pattern sees it: the hub, the id, its twin's sections, this attempt."""

    fleet: TwinManager
    device_id: str
    attempt: Attempt
    reported: Mapping[str, Any]
    desired: Mapping[str, Any]


def invoke(device: Device, method: str, payload: Any, *, timeout: int = 30) -> Verdict:
    """Call a direct method on the device: in progress when it answered 200, else failed with
    the hub's error code or the device's status (e.g. `reboot: DeviceNotOnline`).

    Raises:
        Throttled: the hub's quota refused the call through every retry; that is no failure of
            the device, so it is left to the campaign (which releases the device).
    """
    try:
        result = device.fleet.methods.invoke(device.device_id, method, payload, timeout=timeout)
    except Throttled:
        raise
    except HubError as exc:
        return Verdict.failed(f"{method}: {exc.error_code or exc.status}")
    if result.status != 200:
        return Verdict.failed(f"{method} answered {result.status}")
    return Verdict.in_progress()


class Params(BaseModel):
    """The base of every pattern's parameters: frozen, strict about unknown fields, and
    carrying `kind` (declare it as `kind: Literal["myKind"] = "myKind"`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str


@runtime_checkable
class Pattern(Protocol):
    """What the back end needs of a pattern (see the module docstring)."""

    @property
    def kind(self) -> str: ...

    @property
    def params(self) -> type[Params]: ...

    @property
    def description(self) -> str: ...

    def apply(self, params: Any, device: Device) -> Verdict:
        """Start the pattern on one device (called once per attempt)."""
        ...

    def outcome(self, params: Any, device: Device) -> Verdict:
        """The device's outcome of `device.attempt`, from its twin."""
        ...

    def rollback(self, params: Any) -> Params | None:
        """What to apply when a campaign of it aborts with rollback, or None."""
        ...


@runtime_checkable
class DesiredPatch(Protocol):
    """What a pattern whose `apply` is a desired-properties patch may add (see the module
    docstring). `apply` must stay equivalent: it is what runs where `desired` gives None."""

    def desired(self, params: Any, device: Device) -> Mapping[str, Any] | None:
        """The desired-properties merge patch `apply` would write to `device`, or None."""
        ...


class Registry:
    """Patterns keyed by kind."""

    def __init__(self, patterns: tuple[Pattern, ...] = ()) -> None:
        self._patterns: dict[str, Pattern] = {}
        for pattern in patterns:
            self.register(pattern)

    def register(self, pattern: Pattern) -> Pattern:
        """Add a pattern.

        Raises:
            PatternError: it does not implement `Pattern`, or its kind is taken by another.
        """
        if not isinstance(pattern, Pattern):
            raise PatternError(
                f"{pattern!r} is not a pattern: it needs kind, params, description, apply, "
                f"outcome and rollback (see patterns.api)."
            )
        taken = self._patterns.get(pattern.kind)
        if taken is not None and taken is not pattern:
            raise PatternError(f"Two patterns claim the kind {pattern.kind!r}: {taken!r} and "
                               f"{pattern!r}; uninstall one.")  # fmt: skip
        self._patterns[pattern.kind] = pattern
        return pattern

    def get(self, kind: str) -> Pattern:
        """Raises UnknownPattern, naming the installed kinds."""
        try:
            return self._patterns[kind]
        except KeyError:
            raise UnknownPattern(kind, self.kinds()) from None

    def kinds(self) -> list[str]:
        return list(self._patterns)

    def __iter__(self) -> Iterator[Pattern]:
        return iter(list(self._patterns.values()))

    def __contains__(self, kind: object) -> bool:
        return kind in self._patterns

    def parse(self, data: Any) -> Params:
        """Pattern parameters from their JSON (or a `Params` already made), by `kind`.

        Raises:
            UnknownPattern: no pattern of that kind is installed.
            ValueError: the data is not an object with a `kind`, or not valid for its pattern.
        """
        if isinstance(data, Params):
            self.get(data.kind)
            return data
        if not isinstance(data, Mapping) or not isinstance(data.get("kind"), str):
            raise ValueError("a pattern is an object with a 'kind' naming an installed pattern")
        return self.get(data["kind"]).params.model_validate(data)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register every pattern installed packages declare in `group`.

        Raises:
            PatternError: an entry point fails to load or is not a pattern (named in the error).
        """
        for entry in importlib.metadata.entry_points(group=group):
            try:
                loaded = entry.load()
                pattern = (
                    loaded() if inspect.isclass(loaded) or not hasattr(loaded, "kind") else loaded
                )
            except Exception as exc:
                raise PatternError(
                    f"The pattern entry point {entry.name!r} ({entry.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self.register(pattern)
            log.debug("pattern %s from entry point %s", pattern.kind, entry.value)


@functools.cache
def _default() -> Registry:
    from patterns import builtin  # the built-ins register through this same API

    found = Registry(builtin.PATTERNS)
    found.load_entry_points()
    return found


def registry(*, refresh: bool = False) -> Registry:
    """The process's registry: the built-ins, then installed entry points (loaded once;
    `refresh=True` looks again, e.g. after installing a package)."""
    if refresh:
        _default.cache_clear()
    return _default()
