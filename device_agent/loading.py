"""Loading the handlers a device's settings (or `--app`) name as `module:attribute`.

The attribute is one of:

- a handler (`device_agent.handlers.api`), a list of them, or a class or zero-argument factory
  making them: each is added to the agent;
- a function of one argument, called with the `DeviceAgent`, that registers what it handles
  through the agent's extension API (`agent.add(handler)`, `agent.section(name)`,
  `agent.method(name)`)::

    # acme/leds.py
    def install(agent):
        @agent.section("leds")
        def leds(desired):
            set_leds(desired["color"])
            return {"color": desired["color"]}

This one module is where the settings meet the agent's extension API.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

from device_agent import errors
from device_agent.handlers import api

__all__ = ["install_handlers", "resolve"]


def resolve(reference: str, field: str) -> Any:
    """The object `module:attribute` names.

    Raises:
        InvalidSettings: the module cannot be imported or has no such attribute.
    """
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise errors.InvalidSettings(
            f"{field}: cannot import {module_name!r} ({exc}); install it or fix the name",
            field=field,
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise errors.InvalidSettings(
                f"{field}: module {module_name!r} has no attribute {attribute!r}", field=field
            ) from None
    return target


def _takes_the_agent(target: Any) -> bool:
    """A plain function (not a class) with exactly one required positional parameter."""
    if inspect.isclass(target) or not callable(target):
        return False
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is p.empty]
    return len(required) == 1


def install_handlers(agent: Any, references: Sequence[str]) -> None:
    """Add the handlers each `module:attribute` names to `agent` (see the module doc).

    Raises:
        InvalidSettings: a reference cannot be resolved, is not a handler or installer, or
            raised.
    """
    for index, reference in enumerate(references):
        field = f"handlers[{index}]"
        target = resolve(reference, field)
        if _takes_the_agent(target):
            try:
                target(agent)
            except Exception as exc:
                raise errors.InvalidSettings(
                    f"{field}: {reference}(agent) failed: {type(exc).__name__}: {exc}",
                    field=field,
                ) from exc
            continue
        if not callable(target) and not api.is_handler(target) and not isinstance(target, list):
            raise errors.InvalidSettings(
                f"{field}: {reference} is not callable; name a function that takes the agent, "
                "a handler, or a list of handlers",
                field=field,
            )
        try:
            found = api.handlers_of(target, reference)
        except api.HandlerError as exc:
            raise errors.InvalidSettings(f"{field}: {exc}", field=field) from exc
        for handler in found:
            agent.add(handler)
