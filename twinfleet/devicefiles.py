"""Device files: what `twinfleet device import` reads and `twinfleet device export` writes.

Two spellings of the same rows, told apart by the file's name:

- JSON lines (any name but `*.csv`): one object per line, `{"deviceId": "th-1", "status":
  "enabled", "tags": {...}, "desired": {...}}`, plus `primaryKey` and `secondaryKey` when keys
  are given (export writes them only with `--include-keys`); blank lines are skipped.
- CSV (`*.csv`): a header naming the columns (`deviceId` is required; `status`, `tags`,
  `desired`, `primaryKey`, `secondaryKey` may be left out), `tags` and `desired` as JSON text;
  an empty cell takes the default.

`status` is `enabled` unless given; keys are made by the hub unless given. A row that is not
valid is a `BadRow` naming its line and what is wrong, and never stops the rows after it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["COLUMNS", "BadRow", "DeviceRow", "read_rows", "write_row"]

COLUMNS = ("deviceId", "status", "tags", "desired", "primaryKey", "secondaryKey")


class DeviceRow(BaseModel):
    """One device of a device file. The keys are secrets: never log them."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    device_id: str = Field(alias="deviceId", min_length=1, max_length=128)
    status: Literal["enabled", "disabled"] = "enabled"
    tags: dict[str, Any] = Field(default_factory=dict)
    desired: dict[str, Any] = Field(default_factory=dict)
    primary_key: str | None = Field(default=None, alias="primaryKey", repr=False)
    secondary_key: str | None = Field(default=None, alias="secondaryKey", repr=False)
    line: int = Field(default=0, exclude=True)

    def wire(self, *, include_keys: bool = False) -> dict[str, Any]:
        """The row as a JSON-lines object (keys only when asked for and known)."""
        row: dict[str, Any] = {"deviceId": self.device_id, "status": self.status,
                               "tags": self.tags, "desired": self.desired}  # fmt: skip
        if include_keys:
            row.update(primaryKey=self.primary_key, secondaryKey=self.secondary_key)
        return row


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read: its line number and what is wrong with it."""

    line: int
    message: str
    device_id: str | None = None


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the row"
    if first["type"] == "extra_forbidden":
        return f"{where} is not a column (use {', '.join(COLUMNS)})"
    return f"{where}: {first['msg']}"


def _row(data: Any, line: int) -> DeviceRow | BadRow:
    if not isinstance(data, dict):
        return BadRow(line, "the row is not a JSON object")
    device_id = data.get("deviceId")
    named = device_id if isinstance(device_id, str) else None
    try:
        return DeviceRow.model_validate({**data, "line": line})
    except ValidationError as exc:
        return BadRow(line, _problem(exc), named)


def _json_lines(source: TextIO) -> Iterator[DeviceRow | BadRow]:
    for line, text in enumerate(source, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield BadRow(line, f"not JSON ({exc.msg} at column {exc.colno})")
            continue
        yield _row(data, line)


def _csv(source: TextIO) -> Iterator[DeviceRow | BadRow]:
    reader = csv.DictReader(source)
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in COLUMNS]
    if "deviceId" not in header or unknown:
        yield BadRow(1, f"the header must name deviceId and only {', '.join(COLUMNS)} "
                        f"(found {', '.join(header) or 'nothing'})")  # fmt: skip
        return
    for record in reader:
        line = reader.line_num
        data: dict[str, Any] = {}
        bad: BadRow | None = None
        for name, cell in record.items():
            if name is None:  # more cells than the header has columns
                bad = BadRow(line, f"the row has more cells than the header's {len(header)}")
                break
            if cell is None or cell == "":
                continue
            if name in ("tags", "desired"):
                try:
                    data[name] = json.loads(cell)
                except json.JSONDecodeError as exc:
                    bad = BadRow(line, f"{name} is not JSON ({exc.msg})", record.get("deviceId"))
                    break
            else:
                data[name] = cell
        yield bad or _row(data, line)


def read_rows(source: TextIO, *, csv_format: bool) -> Iterator[DeviceRow | BadRow]:
    """The rows of a device file, each a `DeviceRow` or a `BadRow`, in order; a device id seen
    before is a `BadRow` naming the line it was first seen on."""
    seen: dict[str, int] = {}
    for row in _csv(source) if csv_format else _json_lines(source):
        if isinstance(row, DeviceRow):
            first = seen.setdefault(row.device_id, row.line)
            if first != row.line:
                row = BadRow(row.line, f"device {row.device_id!r} is also on line {first}",
                             row.device_id)  # fmt: skip
        yield row


def write_row(out: TextIO, row: DeviceRow, *, include_keys: bool) -> None:
    """Write one row as a JSON line."""
    out.write(json.dumps(row.wire(include_keys=include_keys), separators=(",", ":")) + "\n")
