"""The desired-properties editor sends the merge patch between what was loaded and what was
edited: a removed key becomes null (IoT Hub deletes it), unchanged keys are not sent."""

from twinfleet.dashboard.views.devices import merge_patch


def test_the_patch_between_two_documents() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "gone": True, "same": [1, 2]}
    new = {"a": 2, "b": {"c": 2, "e": 4}, "same": [1, 2], "added": {"x": None}}
    assert merge_patch(old, new) == {
        "a": 2,
        "b": {"d": None, "e": 4},
        "gone": None,
        "added": {"x": None},
    }
    assert merge_patch(old, old) == {}
    assert merge_patch({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
