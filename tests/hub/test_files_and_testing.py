"""The hub's durable file writer and its test-only fault switch, on their own."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from local_hub import errors, files, testing


def test_an_atomic_write_replaces_the_file_whole_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "keys.json"
    target.write_bytes(b"old")
    files.write_atomic(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temporary left behind


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "artifact.bin"
    target.write_bytes(b"old")

    def upload() -> None:
        with files.atomic_writer(target) as out:
            out.write(b"half of the new")
            raise ConnectionResetError  # the client went away mid-upload

    with pytest.raises(ConnectionResetError):
        upload()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact.bin"]


def test_concurrent_atomic_writers_of_one_path_never_share_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "same.bin"
    with files.atomic_writer(target) as first, files.atomic_writer(target) as second:
        first.write(b"first")
        second.write(b"second")
    assert target.read_bytes() == b"first"  # the last to finish wins, whole
    assert [p.name for p in tmp_path.iterdir()] == ["same.bin"]


def test_faults_fail_the_next_requests_then_stop() -> None:
    faults = testing.Faults()
    assert faults.take() is None
    faults.inject(429, 2, retry_after=3)
    throttled = faults.take()
    assert isinstance(throttled, errors.Throttled)
    assert throttled.retry_after == 3
    assert isinstance(faults.take(), errors.Throttled)
    assert faults.take() is None
    faults.inject(503, 5)
    unavailable = faults.take()
    assert isinstance(unavailable, errors.ServerError)
    assert unavailable.status == 503
    faults.inject(503, 0)  # clears what was left
    assert faults.take() is None


def test_faults_refuse_a_status_that_is_not_a_failure() -> None:
    with pytest.raises(ValueError, match="429 or a 5xx"):
        testing.Faults().inject(200, 1)
