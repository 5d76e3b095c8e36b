"""Query cases as data: each file in cases/ holds twins and queries with their expected results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import queries

CASES = Path(__file__).parent / "cases"


def _load() -> list[Any]:
    params = []
    for path in sorted(CASES.glob("*.json")):
        data = json.loads(path.read_text())
        for case in data["cases"]:
            params.append(pytest.param(data["twins"], case, id=f"{path.stem}: {case['name']}"))
    return params


@pytest.mark.parametrize(("twins", "case"), _load())
def test_case(twins: list[dict[str, Any]], case: dict[str, Any]) -> None:
    strict = case.get("strict", False)
    if "error" in case:
        with pytest.raises(queries.QueryError) as caught:
            queries.parse(case["query"], strict=strict)
        assert type(caught.value).__name__ == case["error"]
        if "line" in case:
            assert (caught.value.line, caught.value.column) == (case["line"], case["column"])
        assert "^" in str(caught.value)
        return
    rows = queries.parse(case["query"], strict=strict).run(twins)
    if "ids" in case:
        assert [row["deviceId"] for row in rows] == case["ids"]
    else:
        assert rows == case["rows"]
