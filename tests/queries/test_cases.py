"""Query cases as data: each file in cases/ holds twins and cases with their expected results.

A case is one of:
- `query` with `ids` (the deviceIds of the rows, in order) or `rows` (the exact rows);
- `query` with `error` (the QueryError subclass) and optionally `line` and `column`;
- `condition` with its own `docs` and `matches` (one boolean per document), for bare conditions
  as jobs' queryCondition, configurations' targetCondition and message routes use them.
Adding a case is editing a JSON file, not code.
"""

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
        data = json.loads(path.read_text(encoding="utf-8"))
        for case in data["cases"]:
            params.append(pytest.param(data["twins"], case, id=f"{path.stem}: {case['name']}"))
    return params


@pytest.mark.parametrize(("twins", "case"), _load())
def test_case(twins: list[dict[str, Any]], case: dict[str, Any]) -> None:
    strict = case.get("strict", False)
    if "condition" in case:
        if "error" in case:
            with pytest.raises(queries.QueryError) as caught:
                queries.parse_condition(case["condition"], strict=strict)
            _check_error(caught.value, case)
            return
        condition = queries.parse_condition(case["condition"], strict=strict)
        documents = case.get("docs", twins)
        assert [condition.matches(doc) for doc in documents] == case["matches"]
        return
    if "error" in case:
        with pytest.raises(queries.QueryError) as caught:
            queries.parse(case["query"], strict=strict)
        _check_error(caught.value, case)
        return
    query = queries.parse(case["query"], strict=strict)
    rows = query.run(twins)
    if "ids" in case:
        assert [row["deviceId"] for row in rows] == case["ids"]
        assert [doc["deviceId"] for doc in twins if query.matches(doc)][: len(rows)] == case["ids"]
    else:
        assert rows == case["rows"]


def _check_error(error: queries.QueryError, case: dict[str, Any]) -> None:
    assert type(error).__name__ == case["error"]
    if "line" in case:
        assert (error.line, error.column) == (case["line"], case["column"])
    if "message" in case:
        assert case["message"] in str(error)
    caret = str(error).split("\n")[-1]
    assert caret.strip() == "^"
    if len(error.text.split("\n")[error.line - 1]) <= 100:
        assert len(caret) - 3 == error.column - 1  # two spaces of indent, then the caret
    else:
        assert len(caret) <= 110  # a long line is shown as a window around the position


def test_public_surface() -> None:
    assert sorted(queries.__all__) == [
        "Condition",
        "Query",
        "QueryError",
        "QuerySyntaxError",
        "QueryWarning",
        "Scheme",
        "UNDEFINED",
        "UnsupportedQuery",
        "check",
        "check_condition",
        "parse",
        "parse_condition",
        "quote",
    ]
