"""Turn audio past its retention is deleted; the archive keeps the turns, their labels and the statistics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ivr.records.archive import Archive
from ivr.voice.training.labels import archive_rows
from ivr.voice.training.retention import DAY_S, expired_day_folders, purge_turn_audio
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


def test_only_whole_days_before_the_cut_off_are_expired() -> None:
    cut = time.mktime(time.strptime("2027-01-10 12:00", "%Y-%m-%d %H:%M"))
    names = ["2027-01-08", "2027-01-09", "2027-01-10", "notes", "2027-01-11"]
    assert expired_day_folders(names, cut) == ["2027-01-08", "2027-01-09"]
