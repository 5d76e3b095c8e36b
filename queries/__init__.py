"""The IoT Hub query language: parse, validate and evaluate twin and job queries.

>>> from queries import parse
>>> q = parse("SELECT * FROM devices WHERE tags.location.region = 'US'")
>>> q.matches({"deviceId": "d1", "tags": {"location": {"region": "US"}}})
True
"""

from queries.checking import QueryWarning, Scheme, check, check_condition
from queries.errors import QueryError, QuerySyntaxError, UnsupportedQuery
from queries.query import Condition, Query, parse, parse_condition
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
]
