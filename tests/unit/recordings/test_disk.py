"""A full recordings disk: said once when it fills and once when it has room again, and named as the reason a
call's recording is missing (MixMonitor itself only logs inside Asterisk)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from ivr import metrics
from ivr.recordings import disk
from ivr.recordings.disk import MIN_FREE_BYTES, DiskWatch, Room
from ivr.recordings.index import RecordingIndex
from ivr.recordings.library import RecordingLibrary
from ivr.recordings.manifest import Manifest
from tests.unit.recordings.builders import answered_call, call_dict


class Filesystem:
    """os.statvfs as a test says it: ``free`` bytes and ``inodes`` left."""

    def __init__(self, free: int, inodes: int = 10_000) -> None:
        self.free, self.inodes = free, inodes

    def __call__(self, _path: object) -> SimpleNamespace:
        return SimpleNamespace(f_bavail=self.free // 4096, f_frsize=4096, f_favail=self.inodes)


def test_full_means_too_few_bytes_or_too_few_inodes() -> None:
    assert not Room(Path("/r"), MIN_FREE_BYTES, 1000).full
    assert Room(Path("/r"), MIN_FREE_BYTES - 1, 1000).full
    assert Room(Path("/r"), 10 * MIN_FREE_BYTES, 0).full


def test_the_watch_says_once_when_the_disk_fills_and_once_when_it_has_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    filesystem = Filesystem(free=10 * MIN_FREE_BYTES)
    monkeypatch.setattr(os, "statvfs", filesystem)
    watch = DiskWatch(tmp_path)
    with caplog.at_level(logging.WARNING, logger="ivr.recordings.disk"):
        assert watch.check() is not None and not watch.full
        filesystem.free = 1024
        watch.check()
        watch.check()
        assert watch.full and metrics.is_up(disk.METRIC) is False
        filesystem.free = 10 * MIN_FREE_BYTES
        watch.check()
    assert not watch.full and metrics.is_up(disk.METRIC)
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(said) == 2, said
    assert said[0][0] == "ERROR" and "NOT recorded" in said[0][1] and str(tmp_path) in said[0][1]
    assert said[1][0] == "WARNING" and "room again" in said[1][1]


def test_a_missing_recording_on_a_full_disk_names_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    lib = RecordingLibrary(tmp_path / "recordings", RecordingIndex(tmp_path / "index.sqlite3"),
                           Manifest(tmp_path / "recordings" / "manifest.jsonl"), settle_s=0.0, wait_s=2)
    (tmp_path / "recordings").mkdir()
    monkeypatch.setattr(os, "statvfs", Filesystem(free=0, inodes=0))
    with caplog.at_level(logging.ERROR, logger="ivr.recordings.library"):
        row = lib.finalize(call_dict(answered_call("c-9")))
    assert row.state == "missing"
    assert row.problem is not None and row.problem.startswith("not recorded: the recordings disk was full")
    assert any("call c-9 was NOT recorded: the recordings disk is full" in r.getMessage() for r in caplog.records)
