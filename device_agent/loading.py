"""Loading the handlers a device's settings name as `module:attribute`.

The attribute is a callable that receives the `DeviceAgent` and registers what it handles
through the agent's extension API (`agent.section(name)`, `agent.method(name)`)::

    # acme/leds.py
    def install(agent):
        @agent.section("leds")
        def leds(desired):
            set_leds(desired["color"])
            return {"color": desired["color"]}

This one function is where the settings meet the agent's extension API.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from device_agent import errors

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


def install_handlers(agent: Any, references: Sequence[str]) -> None:
    """Import each `module:attribute` and call it with `agent` so it registers its handlers.

    Raises:
        InvalidSettings: a reference cannot be resolved, is not callable, or raised.
    """
    for index, reference in enumerate(references):
        field = f"handlers[{index}]"
        installer = resolve(reference, field)
        if not callable(installer):
            raise errors.InvalidSettings(
                f"{field}: {reference} is not callable; name a function that takes the agent",
                field=field,
            )
        try:
            installer(agent)
        except Exception as exc:
            raise errors.InvalidSettings(
                f"{field}: {reference}(agent) failed: {type(exc).__name__}: {exc}", field=field
            ) from exc
