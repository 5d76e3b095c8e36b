"""A fleet's metadata scheme, from a pydantic model or a JSON Schema file: tag writes refused with
the tag named, misspelt query paths caught with a "did you mean", before anything is sent."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from local_hub import LocalHub
from patterns.builtin.retire import RETIRED_TAG
from patterns.campaigns import Campaign, CampaignSpec, ConfigurationChange
from twin_manager import (
    FleetScheme,
    InvalidQuery,
    InvalidScheme,
    InvalidTags,
    TwinManager,
    load_scheme,
    schemes,
)

MODULE = """
from typing import Literal

from pydantic import BaseModel, Field


class Location(BaseModel):
    site: str
    floor: int | None = Field(default=None, ge=0, le=99)


class Tags(BaseModel):
    region: Literal["eu-west", "us-east"]
    ring: Literal["canary", "main"] = "main"
    location: Location | None = None


class Capabilities(BaseModel):
    model: str | None = None
    sensors: list[str] | None = None


class Fleet(BaseModel):
    tags: Tags
    reported: Capabilities | None = None
"""

JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Fleet",
    "type": "object",
    "properties": {
        "tags": {"$ref": "#/$defs/Tags"},
        "reported": {
            "type": "object",
            "properties": {
                "model": {"type": "string"},
                "sensors": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
    "required": ["tags"],
    "$defs": {
        "Tags": {
            "type": "object",
            "properties": {
                "region": {"enum": ["eu-west", "us-east"]},
                "ring": {"enum": ["canary", "main"], "default": "main"},
                "location": {
                    "type": "object",
                    "properties": {
                        "site": {"type": "string", "description": "the plant"},
                        "floor": {"type": ["integer", "null"], "minimum": 0, "maximum": 99},
                    },
                    "required": ["site"],
                },
            },
            "required": ["region"],
        }
    },
}


@pytest.fixture(params=["model", "json"])
def scheme(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FleetScheme:
    """The same scheme declared both ways: a pydantic model in a module, a JSON Schema file."""
    if request.param == "model":
        name = f"scheme_{request.node.name.split('[')[0]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
        monkeypatch.syspath_prepend(str(tmp_path))
        return load_scheme(f"{name}:Fleet")
    path = tmp_path / "scheme.json"
    path.write_text(json.dumps(JSON_SCHEMA))
    return load_scheme(path)


@pytest.fixture
def fleet(hub: LocalHub, scheme: FleetScheme) -> TwinManager:
    manager = TwinManager.from_local_hub(hub, scheme=scheme)
    manager.devices.create("tagged")
    return manager


@pytest.mark.parametrize(
    ("patch", "path", "says"),
    [
        ({"regoin": "eu-west"}, "tags.regoin", "did you mean tags.region?"),
        ({"region": "mars"}, "tags.region", "'eu-west' or 'us-east'"),
        ({"location": {"site": "p7", "flor": 2}}, "tags.location.flor", "tags.location.floor"),
        ({"location": {"site": "p7", "floor": 120}}, "tags.location.floor",
         "less than or equal to 99"),
        ({"location": {"site": "p7", "floor": "3"}}, "tags.location.floor", "valid integer"),
        ({"region": None}, "tags.region", "cannot be removed"),
    ],
)  # fmt: skip
def test_a_bad_tag_write_is_refused_naming_the_tag(
    fleet: TwinManager, patch: dict[str, Any], path: str, says: str
) -> None:
    fleet.twins.update_tags("tagged", {"region": "eu-west"})
    with pytest.raises(InvalidTags) as refused:
        fleet.twins.update_tags("tagged", patch)
    assert refused.value.path == path
    assert path in str(refused.value)
    assert says in str(refused.value)
    assert fleet.twins.get("tagged").tags == {"region": "eu-west"}  # nothing was sent


def test_good_tag_writes_pass_and_framework_tags_are_allowed(fleet: TwinManager) -> None:
    fleet.twins.update_tags("tagged", {"region": "us-east", "location": {"site": "p7", "floor": 3}})
    fleet.twins.update_tags("tagged", {"location": {"floor": None}, "ring": "canary"})
    fleet.twins.update_tags("tagged", {"twinfleet": {"c1": {"state": "queued"}}})
    assert fleet.twins.get("tagged").tags["location"] == {"site": "p7"}
    with pytest.raises(InvalidTags, match=r"tags\.region is required .* the new tags lack it"):
        fleet.twins.replace("tagged", desired={}, tags={"ring": "main"})
    with pytest.raises(InvalidTags, match=r"tags\.regoin"):
        fleet.jobs.schedule_twin_update("*", tags={"regoin": "eu-west"})


def test_a_misspelt_query_path_is_caught_before_the_query_runs(fleet: TwinManager) -> None:
    with pytest.raises(InvalidQuery) as caught:
        list(fleet.queries.run("SELECT * FROM devices WHERE tags.regoin = 'eu-west'"))
    message = str(caught.value)
    assert "'tags.regoin' is not in the fleet's tag scheme; did you mean 'tags.region'?" in message
    assert message.endswith("WHERE tags.regoin = 'eu-west'\n" + " " * 30 + "^")
    assert (caught.value.line, caught.value.column) == (1, 29)
    with pytest.raises(InvalidQuery, match=r"did you mean 'tags\.location\.floor'"):
        fleet.queries.count("tags.location.flor = 2")
    with pytest.raises(InvalidQuery, match=r"did you mean 'properties\.reported\.model'"):
        fleet.queries.validate_condition("properties.reported.modle = 'gw-100'")
    with pytest.raises(InvalidQuery, match=r"did you mean 'tags\.ring'"):
        fleet.jobs.schedule_twin_update("tags.rign = 'canary'", desired={"x": 1})
    assert fleet.queries.count("tags.region = 'eu-west' AND tags.location.floor > 1") == 0
    assert (
        fleet.queries.count(
            "properties.reported.model = 'gw-100' OR IS_DEFINED(properties.desired.x)"
        )
        == 0
    )


def test_campaigns_run_under_a_scheme(fleet: TwinManager) -> None:
    """Campaigns record progress in the framework's own tag, and their queries pass."""
    fleet.twins.update_tags("tagged", {"region": "eu-west"})
    spec = CampaignSpec(id="schemed", target="tags.region = 'eu-west'",
                        pattern=ConfigurationChange(version=1, settings={}))  # fmt: skip
    campaign = Campaign.create(fleet, spec)
    campaign.tick()
    assert campaign.status().counts == {"admitted": 1}
    with pytest.raises(InvalidQuery, match=r"did you mean 'tags\.region'"):
        Campaign.create(fleet, spec.model_copy(update={"id": "typo", "target": "tags.regin = 'x'"}))


def test_without_a_scheme_nothing_changes(hub: LocalHub, caplog: pytest.LogCaptureFixture) -> None:
    fleet = TwinManager.from_local_hub(hub)
    fleet.devices.create("free")
    fleet.twins.update_tags("free", {"regoin": "anything", "floor": "3"})
    with caplog.at_level(logging.WARNING, logger="twin_manager.querying"):
        assert fleet.queries.count("tags.regoin = 'anything'") == 1
    assert caplog.records == []


def test_a_model_scheme_and_its_json_schema_agree(tmp_path: Path) -> None:
    """What pydantic writes for a scheme model loads back as the same scheme."""
    from pydantic import BaseModel, Field

    class Tags(BaseModel):
        region: str
        json_: int | None = Field(default=None, alias="json")  # a tag named like a method

    class Fleet(BaseModel):
        tags: Tags

    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(Fleet.model_json_schema()))
    loaded = load_scheme(path)
    assert loaded.paths == FleetScheme.of(Fleet).paths
    loaded.check_tags({"region": "x", "json": 2})
    with pytest.raises(InvalidTags, match=r"tags\.json"):
        loaded.check_tags({"json": "two"})


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ("{not json", "Cannot read the scheme file"),
        ('{"type": "object", "properties": {"region": {"type": "string"}}}',
         "needs a `tags` field"),
        ('{"properties": {"tags": {"type": "object", "properties": {"a": {"not": {}}}}}}',
         "the keyword(s) not are not understood"),
    ],
)  # fmt: skip
def test_a_scheme_file_that_cannot_be_used_says_why(tmp_path: Path, content: str | None,
                                                   says: str) -> None:  # fmt: skip
    path = tmp_path / "scheme.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidScheme) as refused:
        load_scheme(path)
    assert says in str(refused.value)
    assert refused.value.source == str(path)


def test_a_scheme_module_that_cannot_be_used_says_why() -> None:
    with pytest.raises(InvalidScheme, match="give `module:Model`"):
        load_scheme("no_colon_here")
    with pytest.raises(InvalidScheme, match="Check the module is importable"):
        load_scheme("no_such_module_anywhere:Fleet")
    with pytest.raises(InvalidScheme, match="not a scheme"):
        load_scheme("json:dumps")


def test_the_retired_tag_is_the_frameworks_under_every_scheme() -> None:
    # every campaign target says NOT IS_DEFINED(tags.twinfleetRetired): a scheme must allow it
    assert RETIRED_TAG in schemes.RESERVED_TAGS
