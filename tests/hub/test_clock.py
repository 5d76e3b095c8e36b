"""The hub's time stamps: IoT Hub's text form, exactly what `datetime` gives, however cached."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from local_hub.clock import iso


def _reference(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


@given(st.floats(min_value=-62_135_596_800 + 1, max_value=253_402_300_799.0))
def test_a_stamp_is_the_moment_to_the_millisecond_as_datetime_rounds_it(moment: float) -> None:
    assert iso(moment) == _reference(moment)


@given(st.integers(min_value=0, max_value=4_000_000_000), st.lists(st.floats(0, 2), max_size=20))
def test_stamps_within_and_across_a_second_are_each_right(base: int, offsets: list[float]) -> None:
    for offset in offsets:  # the cache of the last second formatted is reused and replaced
        assert iso(base + offset) == _reference(base + offset)


def test_a_known_moment_is_cut_to_its_millisecond() -> None:
    assert iso(1_764_806_584.1239) == "2025-12-04T00:03:04.123Z"
    assert iso(1_764_806_584.9999) == "2025-12-04T00:03:04.999Z"
    assert iso(1_764_806_584.9999996) == "2025-12-04T00:03:05.000Z"  # a microsecond rounds up
