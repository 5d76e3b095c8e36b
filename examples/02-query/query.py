"""Query twins: WHERE, GROUP BY, paging, and the checks that run before a query is sent.

python examples/02-query/query.py ./hub
"""

import sys

import queries
from twin_manager import InvalidQuery, TwinManager


def main(hub_dir: str) -> None:
    with TwinManager.from_hub_dir(hub_dir) as fleet:
        for i in range(6):
            device_id = f"example-sensor-{i}"
            if fleet.queries.count(f"deviceId = '{device_id}'") == 0:
                fleet.devices.create(device_id)
            fleet.twins.update_tags(device_id, {"region": "eu-west" if i % 2 else "us-east"})

        # A WHERE over tags, read lazily page by page (continuation tokens under the hood).
        text = "SELECT deviceId FROM devices WHERE tags.region = 'eu-west'"
        print("eu-west:", sorted(row["deviceId"] for row in fleet.queries.run(text, page_size=2)))

        # A GROUP BY: one query, one row per group.
        by_region = fleet.queries.group_by("tags.region", "IS_DEFINED(tags.region)")
        print("by region:", dict(sorted(by_region.items())))

        # A syntax error is found locally, with the position and a caret under the fault.
        try:
            fleet.queries.validate("SELECT * FROM devices WHERE tags.region = ")
        except InvalidQuery as exc:
            print(exc)

        # A query that parses but would silently match nothing is named before it runs.
        for finding in queries.check("SELECT * FROM devices WHERE tags.region = eu-west"):
            print(finding)


if __name__ == "__main__":
    main(sys.argv[1])
