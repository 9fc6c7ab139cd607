"""The controller's archive writer: a call is written in a thread; an archive that cannot be written is logged
and never raises into the call."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ivr.records.archive import Archive
from ivr.voice.training.archiving import CallArchiver
from tests.unit.voice.training.builders import failed_then_key


async def test_a_finished_call_is_archived_and_a_broken_archive_only_logs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = CallArchiver(tmp_path / "archive.sqlite3", "hotline")
    record = failed_then_key()
    assert await good.archive(record, "agent", record.started_at + 9)
    assert await good.disposition(record.call_id, "resolved", "loan", record.started_at + 60)
    stored = Archive(tmp_path / "archive.sqlite3").call(record.call_id)
    assert stored is not None and (stored.ivr_ended_at, stored.disposition_reason) == (record.started_at + 9, "loan")

    (tmp_path / "not-a-folder").write_text("a file where the archive's folder should be")
    broken = CallArchiver(tmp_path / "not-a-folder" / "archive.sqlite3", "hotline")
    with caplog.at_level(logging.ERROR):
        assert not await broken.archive(record)
        assert not await broken.archive(record)
    assert len([r for r in caplog.records if "not archived" in r.getMessage()]) == 1  # once, not per call
