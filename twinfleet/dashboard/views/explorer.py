"""`/query`: the query explorer. Validated locally first (an error shows its line, column and a
caret under the text), then one page at a time by continuation token, through the shared cache.
The URL holds the query, page, size and sort, so it can be shared; a page downloads as CSV or
JSON; a GROUP BY result is also drawn as a bar chart; queries can be saved by name."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError

import queries
from twin_manager import InvalidQuery
from twinfleet.dashboard import caching, hub_access, storage
from twinfleet.dashboard.context import DASHBOARD, Dashboard

__all__ = ["delete_query", "download", "explore", "save_query"]

MAX_PAGE = 1000


@dataclass(frozen=True)
class QueryProblem:
    message: str
    line: int
    column: int
    line_text: str

    @property
    def caret(self) -> str:
        return " " * max(self.column - 1, 0) + "^"


def _problem(text: str, exc: InvalidQuery) -> QueryProblem:
    lines = text.splitlines() or [""]
    line_text = lines[exc.line - 1] if 0 < exc.line <= len(lines) else ""
    return QueryProblem(str(exc).splitlines()[0], exc.line, exc.column, line_text)


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, json.dumps(value, sort_keys=True, default=str))


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key)
    return list(seen)


def _continuation(request: web.Request) -> str | None:
    """The `after` token as the hub gave it: printable ASCII (it travels in a header)."""
    token = request.query.get("after") or None
    if token is not None and (len(token) > 4096 or not all(" " < c <= "~" for c in token)):
        raise web.HTTPBadRequest(text="after= is not a continuation token from this explorer")
    return token


def _size(request: web.Request) -> int:
    try:
        size = int(request.query.get("size", "100"))
    except ValueError:
        raise web.HTTPBadRequest(text="size is a number of rows (1 to 1000)") from None
    if not 1 <= size <= MAX_PAGE:
        raise web.HTTPBadRequest(text="size is a number of rows (1 to 1000)")
    return size


async def _page(dash: Dashboard, text: str, after: str | None, size: int) -> caching.Cached:
    return await dash.cached(
        ("query", text, after, size), dash.access.query_page, text, after, size
    )


def _chart(text: str, rows: list[dict[str, Any]], columns: list[str]) -> dict[str, Any] | None:
    """A bar chart of a GROUP BY result: the last column's numbers by the other columns."""
    if queries.parse(text).select.group_by is None or len(columns) < 2 or not rows:
        return None
    value, labels = columns[-1], columns[:-1]
    if not all(isinstance(r.get(value), int | float) for r in rows):
        return None
    return {
        "type": "bar",
        "label": value,
        "labels": [
            " / ".join("(none)" if r.get(c) is None else str(r.get(c)) for c in labels)
            for r in rows
        ],
        "values": [r[value] for r in rows],
    }


async def explore(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    text = request.query.get("q", "").strip()
    saved_name = request.query.get("saved")
    if not text and saved_name:
        saved = dash.store.query(saved_name)
        text = saved.text if saved is not None else ""
    after = _continuation(request)
    size = _size(request)
    sort = request.query.get("sort")
    descending = request.query.get("dir") == "desc"
    values: dict[str, Any] = {
        "text": text,
        "after": after,
        "size": size,
        "sort": sort,
        "descending": descending,
        "problem": None,
        "rows": [],
        "columns": [],
        "continuation": None,
        "chart": None,
        "error": None,
        "fetched_at": None,
        "stale": False,
        "saved": dash.store.queries,
    }
    status = 200
    if text:
        try:
            dash.access.validate(text)
        except InvalidQuery as exc:
            values["problem"] = _problem(text, exc)
            status = 400
        else:
            try:
                cached = await _page(dash, text, after, size)
            except caching.BudgetSpent as exc:
                values["error"], status = str(exc), 503
            else:
                page: hub_access.QueryPage = cached.value
                rows = list(page.rows)
                columns = columns_of(rows)
                values["chart"] = _chart(text, rows, columns)
                if sort in columns:
                    rows.sort(key=lambda r: _sort_key(r.get(sort)), reverse=descending)
                values.update(
                    rows=rows,
                    columns=columns,
                    continuation=page.continuation,
                    fetched_at=cached.fetched_at,
                    stale=cached.stale,
                )
    return dash.page(request, "query.html", status=status, title="Query explorer", **values)


async def download(request: web.Request) -> web.Response:
    """`/query.csv` and `/query.json`: the page the explorer shows, as a file."""
    dash = request.app[DASHBOARD]
    text = request.query.get("q", "").strip()
    if not text:
        raise web.HTTPBadRequest(text="give the query as ?q=")
    try:
        dash.access.validate(text)
    except InvalidQuery as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    try:
        cached = await _page(dash, text, _continuation(request), _size(request))
    except caching.BudgetSpent as exc:
        raise web.HTTPServiceUnavailable(
            text=str(exc), headers={"Retry-After": str(int(exc.retry_after) + 1)}
        ) from None
    rows: list[dict[str, Any]] = cached.value.rows
    if request.match_info["format"] == "json":
        body = json.dumps(rows, indent=2, ensure_ascii=False)
        content_type, name = "application/json", "query.json"
    else:
        out = io.StringIO()
        columns = columns_of(rows)
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [
                    ""
                    if (v := row.get(c)) is None
                    else v
                    if isinstance(v, str | int | float)
                    else json.dumps(v, sort_keys=True)
                    for c in columns
                ]
            )
        body, content_type, name = out.getvalue(), "text/csv", "query.csv"
    return web.Response(
        text=body,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def save_query(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    form = await request.post()
    text = str(form.get("text", "")).strip()
    try:
        dash.access.validate(text)
        saved = storage.SavedQuery(
            name=str(form.get("name", "")).strip(), text=text, metric=form.get("metric") == "on"
        )
    except InvalidQuery as exc:
        raise web.HTTPBadRequest(text=f"Not saved: {str(exc).splitlines()[0]}") from None
    except ValidationError as exc:
        raise web.HTTPBadRequest(text=f"Not saved: {exc.errors()[0]['msg']}") from None
    dash.store.save_query(saved)
    raise web.HTTPSeeOther(str(request.app.router["query"].url_for().with_query(q=text)))


async def delete_query(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    form = await request.post()
    try:
        dash.store.delete_query(str(form.get("name", "")))
    except storage.StoreError as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    raise web.HTTPSeeOther("/query")
