"""The generated fleet (demo and benchmark input) and the `twinfleet query-demo` command over it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import queries
from twinfleet import fleets
from twinfleet.cli import main


def test_fleets_are_deterministic_and_vary_by_seed() -> None:
    assert fleets.generate_fleet(20, seed=3) == fleets.generate_fleet(20, seed=3)
    assert fleets.generate_fleet(20, seed=3) != fleets.generate_fleet(20, seed=4)


def test_twins_have_the_shape_iot_hub_returns() -> None:
    twins = fleets.generate_fleet(200)
    assert len({t["deviceId"] for t in twins}) == 200
    sizes = [len(json.dumps(t)) for t in twins]
    assert 2_000 < sum(sizes) / len(sizes) < 8_000  # a few KB each
    for twin in twins:
        location = twin["tags"]["location"]
        assert location["city"] in fleets.REGIONS[location["region"]]
        for section in ("desired", "reported"):
            properties = twin["properties"][section]
            assert isinstance(properties["$version"], int)
            assert set(properties) - {"$metadata", "$version"} <= set(properties["$metadata"])


def test_documented_queries_run_on_the_fleet() -> None:
    twins = fleets.generate_fleet(300)
    grouped = queries.parse(
        "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices "
        "FROM devices GROUP BY properties.reported.telemetryConfig.status"
    ).run(twins)
    assert sum(row["numberOfDevices"] for row in grouped) == 300
    assert {row["status"] for row in grouped} == {"Success", "Pending", "Error"}
    region = queries.parse("SELECT * FROM devices WHERE tags.location.region = 'eu-west'")
    expected = [t for t in twins if t["tags"]["location"]["region"] == "eu-west"]
    assert region.run(twins) == expected


def test_demo_prints_counts_a_group_table_and_errors() -> None:
    result = CliRunner().invoke(main.app, ["query-demo", "--devices", "50"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "Generated 50 device twins" in result.output
    assert "numberOfDevices" in result.output
    assert "Success" in result.output
    assert "at line 1, column 41" in result.output
    assert "only IS_DEFINED" in result.output
