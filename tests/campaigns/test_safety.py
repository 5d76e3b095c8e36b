"""The stop decisions a tick takes on its counts (`patterns.campaigns.safety`): abort criteria,
health gates, and which group is rolled out or why the rollout pauses before the next."""

from __future__ import annotations

from patterns.campaigns import AbortCriteria, CampaignSpec, Group, HealthGate, Reboot, safety
from patterns.campaigns.tallies import Tally


def _spec(**fields: object) -> CampaignSpec:
    return CampaignSpec(id="c", pattern=Reboot(), target="tags.kind = 'x'", **fields)  # type: ignore[arg-type]


def test_abort_criteria_trip_only_once_enough_devices_finished() -> None:
    spec = _spec(abort=AbortCriteria(failure_percent=50, min_finished=4))
    assert safety.tripped(spec, finished=3, failed=3, succeeded=0, unhealthy=lambda c: 0) is None
    stop = safety.tripped(spec, finished=4, failed=2, succeeded=2, unhealthy=lambda c: 0)
    assert stop == safety.Stop("abort", "50% of 4 finished devices failed (threshold 50%)")


def test_a_health_gate_pauses_or_aborts_on_the_share_of_updated_devices_it_matches() -> None:
    asked: list[str] = []

    def unhealthy(condition: str) -> int:
        asked.append(condition)
        return 3

    gate = HealthGate(condition="properties.reported.ok = false", max_fraction=0.25, min_devices=10)
    spec = _spec(health_gates=(gate,))
    assert safety.tripped(spec, finished=9, failed=0, succeeded=9, unhealthy=unhealthy) is None
    assert asked == []  # too few updated devices: no query
    assert safety.tripped(spec, finished=12, failed=0, succeeded=12, unhealthy=unhealthy) is None
    stop = safety.tripped(spec, finished=10, failed=0, succeeded=10, unhealthy=unhealthy)
    why = "health gate 'properties.reported.ok = false': 3 of 10 updated devices"
    assert stop == safety.Stop("pause", why)
    aborting = _spec(health_gates=(gate.model_copy(update={"action": "abort"}),))
    stop = safety.tripped(aborting, finished=10, failed=0, succeeded=10, unhealthy=unhealthy)
    assert stop == safety.Stop("abort", why)


def test_groups_go_one_after_another_and_an_unhealthy_one_pauses_the_rollout() -> None:
    canary = Group(name="canary", condition="tags.ring = 'canary'", success_threshold=0.9)
    spec = _spec(groups=(canary,))
    assert safety.current_group(spec, Tally()) is None  # nothing queued anywhere
    rolling = Tally({"canary": {"admitted": 1, "succeeded": 9}, "rest": {"queued": 90}})
    assert safety.current_group(spec, rolling) == "canary"
    done = Tally({"canary": {"succeeded": 10}, "rest": {"queued": 90}})
    assert safety.current_group(spec, done) == "rest"
    short = Tally({"canary": {"succeeded": 8, "cancelled": 2}, "rest": {"queued": 90}})
    assert safety.current_group(spec, short) == safety.Stop(
        "pause", "group canary finished below its success threshold"
    )
    strict = _spec(groups=(canary.model_copy(update={"error_threshold": 0.2}),))
    failing = Tally({"canary": {"admitted": 5, "succeeded": 3, "failed": 1, "timedout": 1}})
    assert safety.current_group(strict, failing) == safety.Stop(
        "pause", "group canary: 40% of finished devices failed"
    )
    assert safety.current_group(_spec(), Tally({"all": {"queued": 3}})) == "all"
