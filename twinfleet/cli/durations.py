"""Durations on the command line: `90`, `90s`, `15m`, `12h`, `7d` (a whole number and a unit)."""

from __future__ import annotations

import re

import typer

__all__ = ["parse_duration"]

_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in `text` (typer callback: a bad value is a usage error naming the format)."""
    match = _DURATION.match(text)
    if match is None or int(match[1]) == 0:
        raise typer.BadParameter(
            f"{text!r} is not a duration: use a positive whole number with s, m, h or d (7d)"
        )
    return int(match[1]) * _UNITS[match[2]]
