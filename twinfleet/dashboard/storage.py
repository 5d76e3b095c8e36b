"""Saved queries and the alert rules built on them, in one JSON file beside the dashboard.

Written atomically (temporary file, fsync, rename), so a crash never leaves half a file. A rule
names a saved query; deleting a query that a rule uses is refused.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["AlertRule", "Operator", "SavedQuery", "Store", "StoreError"]

Operator = Literal[">", ">=", "<", "<=", "==", "!="]
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class StoreError(ValueError):
    """A saved query or rule was refused; the message says why."""


def _checked_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("a name starts with a letter and has up to 64 letters, digits, '-' or '_'")
    return value


class SavedQuery(BaseModel):
    """A named query; `metric` makes `/metrics` export it as a gauge (by group for GROUP BY)."""

    model_config = ConfigDict(frozen=True)

    name: str
    text: str = Field(min_length=1, max_length=8192)
    metric: bool = False

    _name = field_validator("name")(_checked_name)


class AlertRule(BaseModel):
    """Fires when the saved query's value `operator threshold` has held for `for_seconds`.

    The value is the first number in the query's first row (e.g. a `COUNT()`); a query with no
    row counts as 0. `webhook` receives a JSON POST when the rule fires and when it resolves.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    query: str
    operator: Operator = ">"
    threshold: float = 0
    for_seconds: float = Field(default=0, ge=0)
    webhook: str | None = None

    _name = field_validator("name")(_checked_name)

    @field_validator("webhook")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("a webhook is an http:// or https:// URL")
        return value or None

    def holds(self, value: float) -> bool:
        return {
            ">": value > self.threshold,
            ">=": value >= self.threshold,
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            "==": value == self.threshold,
            "!=": value != self.threshold,
        }[self.operator]

    @property
    def condition(self) -> str:
        return f"{self.operator} {self.threshold:g}"


class _Document(BaseModel):
    queries: list[SavedQuery] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=list)


class Store:
    """The saved queries and alert rules of one dashboard, in `path` (created on first save)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._doc = self._read()

    def _read(self) -> _Document:
        if not self.path.exists():
            return _Document()
        try:
            return _Document.model_validate_json(self.path.read_bytes())
        except ValidationError as exc:
            raise StoreError(
                f"{self.path} is not a dashboard store ({exc.error_count()} problems); "
                "move it away or fix it"
            ) from None

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self._doc.model_dump(mode="json"), indent=2).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".dashboard-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def queries(self) -> list[SavedQuery]:
        with self._lock:
            return list(self._doc.queries)

    @property
    def alerts(self) -> list[AlertRule]:
        with self._lock:
            return list(self._doc.alerts)

    def query(self, name: str) -> SavedQuery | None:
        return next((q for q in self.queries if q.name == name), None)

    def save_query(self, query: SavedQuery) -> None:
        """Add or replace (by name)."""
        with self._lock:
            others = [q for q in self._doc.queries if q.name != query.name]
            self._doc = _Document(queries=[*others, query], alerts=self._doc.alerts)
            self._write()

    def delete_query(self, name: str) -> None:
        with self._lock:
            users = [a.name for a in self._doc.alerts if a.query == name]
            if users:
                raise StoreError(
                    f"alert rules {', '.join(users)} use query {name!r}; delete them first"
                )
            self._doc = _Document(
                queries=[q for q in self._doc.queries if q.name != name], alerts=self._doc.alerts
            )
            self._write()

    def save_alert(self, rule: AlertRule) -> None:
        with self._lock:
            if not any(q.name == rule.query for q in self._doc.queries):
                raise StoreError(f"no saved query named {rule.query!r}; save the query first")
            others = [a for a in self._doc.alerts if a.name != rule.name]
            self._doc = _Document(queries=self._doc.queries, alerts=[*others, rule])
            self._write()

    def delete_alert(self, name: str) -> None:
        with self._lock:
            self._doc = _Document(
                queries=self._doc.queries, alerts=[a for a in self._doc.alerts if a.name != name]
            )
            self._write()
