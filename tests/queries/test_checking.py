"""`queries.check`: queries that parse but would silently match nothing are named, with a caret."""

from __future__ import annotations

import pytest

import queries

SCHEME = queries.Scheme(tags={"region": None, "site": {"floor": None}}, reported={"firmware": None})


@pytest.mark.parametrize(
    ("text", "column", "says"),
    [
        ("SELECT * FROM devices WHERE tags.region = eu-west", 43, "write the string as 'eu-west'"),
        ("SELECT * FROM devices WHERE status = enabled", 38, "write the string as 'enabled'"),
        ("SELECT * FROM devices WHERE tag.region = 'x'", 29, "did you mean 'tags'?"),
        (
            "SELECT * FROM devices WHERE properties.reportd.a = 1",
            29,
            "did you mean 'properties.reported'?",
        ),
        ("SELECT COUNT() FROM devices GROUP BY tagz.ring", 38, "did you mean 'tags'?"),
    ],
)
def test_likely_mistakes_are_named_where_they_stand(text: str, column: int, says: str) -> None:
    (warning,) = queries.check(text)
    assert warning.column == column
    assert says in warning.reason
    assert str(warning).splitlines()[-1].index("^") == column + 1  # two spaces of indent


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM devices WHERE tags.region = 'eu-west'",
        "SELECT deviceId, properties.reported.firmware FROM devices WHERE DeviceId = 'd1'",
        "SELECT * FROM devices WHERE tags.a = tags.b - 1",
        "SELECT * FROM devices.jobs WHERE devices.jobs.status = 'failed'",
        "SELECT COUNT() AS n FROM devices GROUP BY properties.reported.firmware.currentFwVersion",
    ],
)
def test_sound_queries_have_no_findings(text: str) -> None:
    assert queries.check(text) == []


def test_a_scheme_catches_a_misspelt_tag_with_the_closest_declared_one() -> None:
    (warning,) = queries.check("SELECT * FROM devices WHERE tags.regoin = 'eu'", scheme=SCHEME)
    assert "did you mean 'tags.region'?" in warning.reason
    (nested,) = queries.check_condition("tags.site.flor = 2", scheme=SCHEME)
    assert "did you mean 'tags.site.floor'?" in nested.reason
    assert queries.check_condition("tags.site.floor = 2 AND tags.region = 'x'", scheme=SCHEME) == []
    # below a property the scheme leaves free, anything goes
    assert queries.check_condition("properties.reported.firmware.x = 1", scheme=SCHEME) == []


def test_a_full_query_where_a_condition_belongs_says_so() -> None:
    with pytest.raises(queries.QuerySyntaxError, match=r"a condition .*not a full query"):
        queries.parse_condition("SELECT * FROM devices WHERE tags.x = 1")


def test_checking_text_that_does_not_parse_raises_the_parse_error() -> None:
    with pytest.raises(queries.QuerySyntaxError):
        queries.check("SELECT * FROM")
