"""Maintenance windows: a cron expression for when a window opens, and how long it stays open.

The cron dialect is the classic five fields (minute, hour, day of month, month, day of week,
Sunday = 0), each `*`, a number, a range `a-b`, a list `a,b`, or a step `*/n` / `a-b/n`, in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["CronError", "cron_matches", "in_window"]

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


class CronError(ValueError):
    """The cron expression is malformed; the message names the field."""


def _field(text: str, low: int, high: int, name: str) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 1 if not step_text else 0
        if step <= 0:
            raise CronError(f"cron {name} field {text!r}: the step must be a positive number")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            if not (first.isdigit() and last.isdigit()):
                raise CronError(f"cron {name} field {text!r} is not a range like 1-5")
            start, end = int(first), int(last)
        elif base.isdigit():
            start = end = int(base)
            if step_text:
                end = high
        else:
            raise CronError(f"cron {name} field {text!r} is not *, a number, a range or a list")
        if not low <= start <= end <= high:
            raise CronError(f"cron {name} field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def _parse(expression: str) -> list[set[int]]:
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(f"cron {expression!r} needs 5 fields (minute hour day month weekday)")
    names = ("minute", "hour", "day-of-month", "month", "day-of-week")
    return [_field(f, lo, hi, n) for f, (lo, hi), n in zip(fields, _RANGES, names, strict=True)]


def cron_matches(expression: str, moment: datetime) -> bool:
    """True when the minute of `moment` (UTC) is one the expression fires on."""
    minute, hour, day, month, weekday = _parse(expression)
    return (
        moment.minute in minute and moment.hour in hour and moment.day in day
        and moment.month in month and (moment.weekday() + 1) % 7 in weekday
    )  # fmt: skip


def in_window(expression: str, duration_minutes: float, now: float) -> bool:
    """True when a window that opened at a cron fire time is still open at `now`."""
    fields = _parse(expression)
    moment = datetime.fromtimestamp(now, UTC).replace(second=0, microsecond=0)
    for back in range(int(duration_minutes) + 1):
        t = moment - timedelta(minutes=back)
        if (now - t.timestamp()) / 60 >= duration_minutes:
            break
        minute, hour, day, month, weekday = fields
        if (t.minute in minute and t.hour in hour and t.day in day and t.month in month
                and (t.weekday() + 1) % 7 in weekday):  # fmt: skip
            return True
    return False
