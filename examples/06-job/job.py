"""IoT Hub scheduled jobs: a twin update over a query condition, and each device's result.

python examples/06-job/job.py ./hub
"""

import sys

from twin_manager import TwinManager


def main(hub_dir: str) -> None:
    with TwinManager.from_hub_dir(hub_dir) as fleet:
        for i in range(3):
            device_id = f"example-meter-{i}"
            if fleet.queries.count(f"deviceId = '{device_id}'") == 0:
                fleet.devices.create(device_id)
            fleet.twins.update_tags(device_id, {"site": "plant-7"})

        job = fleet.jobs.schedule_twin_update(
            "tags.site = 'plant-7'", desired={"sampling": {"periodSeconds": 10}}
        )
        done = fleet.jobs.wait(job.job_id, timeout=60)
        print(f"job {done.job_id}: {done.status}, {done.statistics.succeeded_count} succeeded")
        for result in fleet.jobs.results(done.job_id):
            print(f"  {result.device_id}: {result.status}")
        print("desired now:", fleet.twins.get("example-meter-0").desired)


if __name__ == "__main__":
    main(sys.argv[1])
