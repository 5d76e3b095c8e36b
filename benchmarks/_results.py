"""The table of goals `make bench` prints at its end and writes to `bench-results.json`.

Each row is one measure, its value, the anchor measured in the same run (a peer such as mosquitto,
curl or SQLite, or the same operation done the plain way), their ratio and whether the goal is met.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Row", "print_table", "record", "rows", "write_json"]


@dataclass(frozen=True)
class Row:
    measure: str
    value: float
    unit: str
    anchor: str
    anchor_value: float | None
    goal: str
    met: bool
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.anchor_value in (None, 0):
            return None
        return self.value / self.anchor_value  # type: ignore[operator]


rows: list[Row] = []


def record(row: Row) -> None:
    """Add a row to the table and say it at once."""
    rows.append(row)
    anchor = "" if row.anchor_value is None else f" (anchor {row.anchor_value:,.2f})"
    print(f"   -> {row.measure}: {row.value:,.2f} {row.unit}{anchor}; goal {row.goal}: "
          f"{'met' if row.met else 'NOT met'}", flush=True)  # fmt: skip


def print_table() -> None:
    if not rows:
        return
    print("\n== goals (issue 15)")
    header = ("measure", "value", "anchor (same run)", "ratio", "goal", "met?")
    lines = [header]
    for row in rows:
        anchor = (
            row.anchor if row.anchor_value is None else f"{row.anchor}: {row.anchor_value:,.2f}"
        )
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append((row.measure, f"{row.value:,.2f} {row.unit}", anchor, ratio, row.goal,
                      "yes" if row.met else "NO"))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(
            "   " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        )


def write_json(path: Path) -> None:
    path.write_text(json.dumps([{**asdict(r), "ratio": r.ratio} for r in rows], indent=2) + "\n")
