"""The compiled query engine vs SQLite's JSON functions, full scans over 100,000 generated twins.

SQLite holds each twin as JSON text in an in-memory table and answers with `json_extract` (and
`json_type`, so that, as in IoT Hub, a number never equals a string). Both sides must find the
same answer; each figure is the best of three runs.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import queries
from twinfleet import fleets

__all__ = ["main"]

COUNT = 100_000
WHERE = (
    "tags.location.region = 'eu-west' AND properties.reported.health.crashCount < 2 "
    "AND properties.reported.firmware.currentFwVersion != '2.0.0'"
)
SQL_WHERE = (
    "json_extract(doc, '$.tags.location.region') = 'eu-west' "
    "AND json_type(doc, '$.properties.reported.health.crashCount') IN ('integer', 'real') "
    "AND json_extract(doc, '$.properties.reported.health.crashCount') < 2 "
    "AND json_type(doc, '$.properties.reported.firmware.currentFwVersion') = 'text' "
    "AND json_extract(doc, '$.properties.reported.firmware.currentFwVersion') != '2.0.0'"
)
GROUP = (
    "SELECT properties.reported.firmware.fwUpdateStatus AS status, COUNT() AS n FROM devices "
    "GROUP BY properties.reported.firmware.fwUpdateStatus"
)
SQL_GROUP = (
    "SELECT json_extract(doc, '$.properties.reported.firmware.fwUpdateStatus') AS status, "
    "COUNT(*) FROM twins GROUP BY status"
)


def _best(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    """Generate the fleet, load SQLite, time both questions both ways and print the figures."""
    twins = fleets.generate_fleet(COUNT)
    size = sum(len(json.dumps(t)) for t in twins[:1000]) / 1000
    print(f"   fleet: {COUNT:,} twins, {size / 1024:.1f} KB each on average")
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE twins (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
    rows = ((t["deviceId"], json.dumps(t)) for t in twins)
    db.executemany("INSERT INTO twins VALUES (?, ?)", rows)

    where = queries.parse(f"SELECT * FROM devices WHERE {WHERE}")
    ours, matched = _best(lambda: sum(1 for t in twins if where.matches(t)))
    theirs, (sql_matched,) = _best(
        lambda: db.execute(f"SELECT COUNT(*) FROM twins WHERE {SQL_WHERE}").fetchone()
    )
    assert matched == sql_matched, (matched, sql_matched)
    _report("(a) 3-predicate WHERE", ours, theirs, f"{matched:,} matched")

    group = queries.parse(GROUP)
    ours, rows = _best(lambda: group.run(twins))
    theirs, sql_rows = _best(lambda: db.execute(SQL_GROUP).fetchall())
    assert {r["status"]: r["n"] for r in rows} == dict(sql_rows)
    _report("(b) GROUP BY count", ours, theirs, f"{len(rows)} groups")


def _report(label: str, ours: float, theirs: float, detail: str) -> None:
    print(
        f"   {label}: twinfleet {COUNT / ours:,.0f} twins/s, SQLite json_extract "
        f"{COUNT / theirs:,.0f} twins/s; twinfleet/SQLite {theirs / ours:.1f}x ({detail})"
    )
