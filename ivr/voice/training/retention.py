"""Turn audio is kept ``turn_audio_retention_days`` days, then purged; labels and statistics stay.

``purge_turn_audio`` deletes the recordings of turns that started before the cut-off (the archive forgets their
path, keeping every other column), and any older day folder of ``recordings/turns/`` left over (calls that were
never archived). Every purge is recorded in the archive's ``purges`` table; ``ivr recordings purge-turns`` also
puts it in the audit log (``ivr audit``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ivr.records.archive import Archive

log = logging.getLogger(__name__)

DAY_S = 24 * 3600
TURNS_FOLDER = "turns"


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge did."""

    before: float
    """Turns that started before this (epoch seconds) lost their audio."""
    files: int
    """Recordings deleted."""
    bytes: int
    """Their size."""
    turns: int
    """Archived turns whose audio path was forgotten."""
    missing: int
    """Archived recordings already gone from the disk."""

    def detail(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.before))
        return (f"turn audio before {when}: {self.files} files ({self.bytes / 1e6:.1f} MB) deleted, "
                f"{self.turns} turns kept without audio, {self.missing} already missing")


def expired_day_folders(names: list[str], before: float) -> list[str]:
    """The day folders (YYYY-MM-DD) whose whole day ended before ``before`` (pure); other names are left alone."""
    out = []
    for name in names:
        try:
            day_start = time.mktime(time.strptime(name, "%Y-%m-%d"))
        except ValueError:
            continue
        if day_start + DAY_S <= before:
            out.append(name)
    return sorted(out)


def _inside(root: Path, rel: str) -> Path | None:
    path = (root / rel).resolve()
    return path if path.is_relative_to(root) else None


def purge_turn_audio(archive: Archive, recordings_dir: Path, days: int, who: str, now: float | None = None,
                     dry_run: bool = False) -> PurgeResult:
    """Delete turn recordings older than ``days`` days; the archive keeps the turns (and their labels)."""
    if days < 1:
        raise ValueError(f"days: at least 1, not {days}")
    now = time.time() if now is None else now
    before = now - days * DAY_S
    root = recordings_dir.resolve()
    files = size = missing = 0
    forgotten: list[tuple[str, int]] = []
    counted: set[Path] = set()
    for call_id, index, rel in archive.turn_audio_before(before):
        path = _inside(root, rel)
        forgotten.append((call_id, index))
        if path is None or not path.is_file():
            missing += 1
            continue
        files += 1
        size += path.stat().st_size
        counted.add(path)
        if not dry_run:
            path.unlink(missing_ok=True)
    # Day folders wholly before the cut-off: recordings of calls never archived (the archive was unwritable).
    turns_root = root / TURNS_FOLDER
    names = [p.name for p in turns_root.iterdir() if p.is_dir()] if turns_root.is_dir() else []
    for name in expired_day_folders(names, before):
        folder = turns_root / name
        for path in folder.glob("*.wav"):
            if path.resolve() in counted:
                continue
            files += 1
            size += path.stat().st_size
            if not dry_run:
                path.unlink(missing_ok=True)
        if not dry_run:
            with contextlib.suppress(OSError):  # not empty (something else in it): left
                folder.rmdir()
    result = PurgeResult(before=before, files=files, bytes=size, turns=len(forgotten), missing=missing)
    if not dry_run:
        archive.forget_audio(forgotten, now)
        archive.record_purge(who, before, files, size, result.detail())
        log.info("purge by %s: %s", who, result.detail())
    return result
