"""HTML from Jinja templates with autoescape always on: every value a page shows is escaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

__all__ = ["TEMPLATES", "environment", "pretty", "when"]

TEMPLATES = Path(__file__).parent / "templates"


def when(moment: datetime | float | None) -> str:
    """A moment as `YYYY-MM-DD HH:MM:SS UTC` ('never' for None)."""
    if moment is None:
        return "never"
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def cell(value: Any) -> str:
    """A table cell: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["pretty"] = pretty
    env.filters["cell"] = cell
    return env
