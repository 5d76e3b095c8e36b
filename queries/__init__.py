"""The IoT Hub query language: parse, validate and evaluate twin and job queries.

Its API (everything else is internal):

- `parse(text)` -> `Query`, `parse_condition(text)` -> `Condition`: a whole query or what
  follows WHERE; `Query.matches(twin)`, `Query.run(twins)`, `Condition.matches(twin)`;
  `strict=True` accepts only what IoT Hub accepts.
- `check(text, scheme=...)`, `check_condition(text, scheme=...)` -> list of `QueryWarning`: what
  parses but would silently match nothing (an unquoted string, a misspelt root, a path outside
  a `Scheme` of the fleet's declared tags and reported properties).
- `quote(text)`: `text` as a string literal to put into query text (a device id, a group).
- `UNDEFINED`: the value of a property a twin does not have.
- Errors: `QueryError` (the root; `line`, `column`, a caret under the fault),
  `QuerySyntaxError`, `UnsupportedQuery`.

>>> from queries import parse
>>> q = parse("SELECT * FROM devices WHERE tags.location.region = 'US'")
>>> q.matches({"deviceId": "d1", "tags": {"location": {"region": "US"}}})
True
"""

from queries.checking import QueryWarning, Scheme, check, check_condition
from queries.errors import QueryError, QuerySyntaxError, UnsupportedQuery
from queries.query import Condition, Query, parse, parse_condition
from queries.quoting import quote
from queries.values import UNDEFINED

__all__ = [
    "UNDEFINED",
    "Condition",
    "Query",
    "QueryError",
    "QuerySyntaxError",
    "QueryWarning",
    "Scheme",
    "UnsupportedQuery",
    "check",
    "check_condition",
    "parse",
    "parse_condition",
    "quote",
]
