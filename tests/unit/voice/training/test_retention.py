"""Turn audio past its retention is deleted; the archive keeps the turns, their labels and the statistics."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from ivr.records.archive import Archive
from ivr.voice.training.labels import archive_rows
from ivr.voice.training.retention import (
    DAY_S,
    FIRST_PURGE_DELAY_S,
    DailyPurge,
    PurgeResult,
    expired_day_folders,
    purge_turn_audio,
)
from tests.unit.voice.training.builders import failed_then_key

NOW = 1_800_000_000.0


def _recorded(archive: Archive, recordings: Path, days_ago: float) -> tuple[str, Path]:
    at = NOW - days_ago * DAY_S
    record = failed_then_key(at=at)
    rel = f"turns/{time.strftime('%Y-%m-%d', time.localtime(at))}/{record.call_id}-1.wav"
    record.turns[0].audio = rel
    (recordings / rel).parent.mkdir(parents=True, exist_ok=True)
    (recordings / rel).write_bytes(b"RIFF" + b"\0" * 96)
    archive.record_call(*archive_rows(record, "hotline"))
    return record.call_id, recordings / rel


def test_old_turn_audio_goes_labels_and_new_audio_stay(tmp_path: Path) -> None:
    archive, recordings = Archive(tmp_path / "a.sqlite3"), tmp_path / "recordings"
    old_id, old_file = _recorded(archive, recordings, days_ago=40)
    new_id, new_file = _recorded(archive, recordings, days_ago=2)
    archive.set_label(old_id, 1, "loan", by="kim")
    orphan = recordings / "turns" / time.strftime("%Y-%m-%d", time.localtime(NOW - 50 * DAY_S)) / "lost-1.wav"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"RIFF")
    outside = tmp_path / "precious.wav"
    outside.write_bytes(b"RIFF")
    sneaky = failed_then_key(at=NOW - 45 * DAY_S)
    sneaky.turns[0].audio = "../precious.wav"
    archive.record_call(*archive_rows(sneaky, "hotline"))

    dry = purge_turn_audio(archive, recordings, 30, "tester", now=NOW, dry_run=True)
    assert old_file.exists() and dry.files == 2
    result = purge_turn_audio(archive, recordings, 30, "tester", now=NOW)
    assert (result.files, result.turns, result.missing) == (2, 2, 1)  # old + orphan deleted; sneaky not touched
    assert not old_file.exists() and not orphan.exists() and not orphan.parent.exists()
    assert new_file.exists() and outside.exists()
    old = archive.turn(old_id, 1)
    assert (old.audio, old.label, old.label_source, old.transcript) == (None, "loan", "trainer", "자나 조회")
    assert archive.turn(new_id, 1).audio is not None
    assert len(archive.turns(0)) == 6  # every turn still counted
    [purge] = archive.purges()
    assert purge["who"] == "tester" and purge["files"] == 2 and "deleted" in purge["detail"]
    with pytest.raises(ValueError, match="days: at least 1"):
        purge_turn_audio(archive, recordings, 0, "tester")


def test_turn_audio_of_a_call_on_legal_hold_stays(tmp_path: Path) -> None:
    archive, recordings = Archive(tmp_path / "a.sqlite3"), tmp_path / "recordings"
    held_id, held_file = _recorded(archive, recordings, days_ago=40)
    gone_id, gone_file = _recorded(archive, recordings, days_ago=41)
    assert held_id != gone_id
    stray = held_file.parent / f"{held_id}-2.wav"  # a turn of the held call the archive never heard of
    stray.write_bytes(b"RIFF")
    result = purge_turn_audio(archive, recordings, 30, "tester", now=NOW, held={held_id})
    assert held_file.exists() and stray.exists() and not gone_file.exists()
    assert result.files == 1 and archive.turn(held_id, 1).audio is not None and archive.turn(gone_id, 1).audio is None


def test_only_whole_days_before_the_cut_off_are_expired() -> None:
    cut = time.mktime(time.strptime("2027-01-10 12:00", "%Y-%m-%d %H:%M"))
    names = ["2027-01-08", "2027-01-09", "2027-01-10", "notes", "2027-01-11"]
    assert expired_day_folders(names, cut) == ["2027-01-08", "2027-01-09"]


class FakeClock:
    """Time that moves only when the schedule sleeps; the run stops after ``stop_after`` sleeps."""

    def __init__(self, now: float, stop_after: int) -> None:
        self.now, self.stop_after, self.slept = now, stop_after, []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if len(self.slept) == self.stop_after:
            raise asyncio.CancelledError
        self.slept.append(seconds)
        self.now += seconds


async def test_the_daily_purge_runs_once_a_day_off_the_loop_and_audits_what_it_removed(tmp_path: Path) -> None:
    archive, recordings = Archive(tmp_path / "a.sqlite3"), tmp_path / "recordings"
    start = NOW - FIRST_PURGE_DELAY_S
    _, old_file = _recorded(archive, recordings, days_ago=40)
    _, ageing_file = _recorded(archive, recordings, days_ago=29.5)  # past 30 days by the second purge
    _, fresh_file = _recorded(archive, recordings, days_ago=1)
    audited: list[tuple[str, str, str, str]] = []
    threads: set[int] = set()
    loop_thread = threading.get_ident()

    async def audit(who: str, action: str, target: str, detail: str) -> None:
        audited.append((who, action, target, detail))

    clock = FakeClock(start, stop_after=3)
    schedule = DailyPurge(archive.path, recordings, 30, audit, clock=clock.time, sleep=clock.sleep)
    purge = schedule._purge

    def spy(now: float) -> PurgeResult:
        threads.add(threading.get_ident())
        return purge(now)

    schedule._purge = spy  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await schedule.run()
    # Never purged at start-up; then once a day.
    assert clock.slept == [FIRST_PURGE_DELAY_S, DAY_S, DAY_S]
    assert schedule.runs == 3 and schedule.last_run == NOW + 2 * DAY_S
    assert threads and loop_thread not in threads  # the disk work never ran on the event loop
    assert not old_file.exists() and not ageing_file.exists() and fresh_file.exists()
    # Audited as the CLI's: who, the same action and target; the third day removed nothing: not audited.
    assert [(who, action, target) for who, action, target, _ in audited] == \
        [("controller", "purge-turns", str(recordings / "turns"))] * 2
    assert "1 files" in audited[0][3] and "1 files" in audited[1][3]
    records = archive.purges()
    assert len(records) == 3 and {r["who"] for r in records} == {"controller"}  # every run in the archive


async def test_the_first_scheduled_purge_waits_a_day_after_the_last_one_and_failures_do_not_stop_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    archive, recordings = Archive(tmp_path / "a.sqlite3"), tmp_path / "recordings"
    clock = FakeClock(NOW, stop_after=0)
    schedule = DailyPurge(archive.path, recordings, 30, clock=clock.time, sleep=clock.sleep)
    assert await schedule.first_wait_s() == FIRST_PURGE_DELAY_S  # no archive yet: soon after start
    purge_turn_audio(archive, recordings, 30, "kim")  # someone purged from the CLI just now
    clock.now = archive.purges(1)[0]["at"] + 3600
    assert await schedule.first_wait_s() == pytest.approx(DAY_S - 3600)  # not again within the day
    clock.now += 2 * DAY_S
    assert await schedule.first_wait_s() == FIRST_PURGE_DELAY_S  # overdue: after the start-up delay
    # A purge that fails (the archive cannot be opened) is logged, never raised: the next day tries again.
    (tmp_path / "a-file").write_text("not a folder")
    broken = DailyPurge(tmp_path / "a-file" / "a.sqlite3", recordings, 30, clock=clock.time, sleep=clock.sleep)
    assert await broken.run_once() is None
    assert broken.runs == 0 and broken.last_run == clock.now
    assert "scheduled purge of turn audio older than 30 days failed" in caplog.text
    with pytest.raises(ValueError, match="turn_audio_retention_days"):
        DailyPurge(archive.path, recordings, 0)
