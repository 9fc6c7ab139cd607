"""Turn audio is kept ``turn_audio_retention_days`` days, then purged; labels and statistics stay.

``purge_turn_audio`` deletes the recordings of turns that started before the cut-off (the archive forgets their
path, keeping every other column), and any older day folder of ``recordings/turns/`` left over (calls that were
never archived). Every purge is recorded in the archive's ``purges`` table; ``ivr recordings purge-turns`` also
puts it in the audit log (``ivr audit``).

``DailyPurge`` is the schedule: the controller runs it once a day (a day after the last purge, by the schedule or
the CLI, as the archive records it), in a worker thread so that no call waits on the disk, and audits a purge that
removed something as the CLI does (who: ``controller``); a purge that fails is logged and tried again the next day.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
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
                     dry_run: bool = False, held: Collection[str] = frozenset()) -> PurgeResult:
    """Delete turn recordings older than ``days`` days; the archive keeps the turns (and their labels).

    ``held``: calls under legal hold (the recordings index): their turn audio stays, whatever its age."""
    if days < 1:
        raise ValueError(f"days: at least 1, not {days}")
    now = time.time() if now is None else now
    before = now - days * DAY_S
    root = recordings_dir.resolve()
    files = size = missing = 0
    forgotten: list[tuple[str, int]] = []
    counted: set[Path] = set()
    for call_id, index, rel in archive.turn_audio_before(before):
        if call_id in held:
            continue
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
            if path.resolve() in counted or path.stem.rpartition("-")[0] in held:  # <call>-<turn>.wav
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


#: Who the scheduled purge is in the audit log and the archive's purge records.
SCHEDULED_BY = "controller"
#: The first scheduled purge waits this long after the controller starts (never during its start-up).
FIRST_PURGE_DELAY_S = 600.0

Audit = Callable[[str, str, str, str], Awaitable[None]]
"""(who, action, target, detail) -> the audit log (``AuditLog.record``)."""


class DailyPurge:
    """``purge_turn_audio`` once a day, off the event loop; every run recorded, every purge that removed something
    audited. ``clock``/``sleep`` are the boundary a unit test fakes."""

    def __init__(self, archive_file: Path, recordings_dir: Path, days: int, audit: Audit | None = None, *,
                 every_s: float = DAY_S, first_delay_s: float = FIRST_PURGE_DELAY_S,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 held: Callable[[], Collection[str]] = frozenset) -> None:
        if days < 1:
            raise ValueError(f"turn_audio_retention_days: at least 1, not {days}")
        self.archive_file, self.recordings_dir, self.days = archive_file, recordings_dir, days
        self.audit, self.every_s, self.first_delay_s = audit, every_s, first_delay_s
        self.clock, self.sleep = clock, sleep
        self.held = held
        """The calls under legal hold, asked before each purge (their turn audio stays)."""
        self.last_run: float | None = None
        """When this schedule last purged (or tried to); None before its first."""
        self.runs = 0
        """Purges this schedule ran (tests, health)."""

    def _purge(self, now: float) -> PurgeResult:
        archive = Archive(self.archive_file)
        try:
            return purge_turn_audio(archive, self.recordings_dir, self.days, SCHEDULED_BY, now=now, held=self.held())
        finally:
            archive.close()

    def _last_recorded(self) -> float | None:
        """When the archive last recorded a purge (the CLI's count too); None when never, or unreadable."""
        if not self.archive_file.exists():
            return None
        archive = Archive(self.archive_file)
        try:
            last = archive.purges(1)
            return float(last[0]["at"]) if last else None
        except Exception:  # an unreadable archive: the purge itself will say what is wrong
            return None
        finally:
            archive.close()

    async def first_wait_s(self) -> float:
        """Seconds until the first purge: a day after the last recorded one, never sooner than the start-up delay."""
        last = await asyncio.to_thread(self._last_recorded)
        due = self.first_delay_s if last is None else last + self.every_s - self.clock()
        return max(self.first_delay_s, due)

    async def run_once(self) -> PurgeResult | None:
        """One purge now, in a thread; its failure is logged (None), never raised: calls go on either way."""
        now = self.clock()
        self.last_run = now
        try:
            result = await asyncio.to_thread(self._purge, now)
        except Exception:
            log.exception("scheduled purge of turn audio older than %d days failed; next try in %.0f h", self.days,
                          self.every_s / 3600)
            return None
        self.runs += 1
        if self.audit is not None and (result.files or result.turns):
            try:
                await self.audit(SCHEDULED_BY, "purge-turns", str(self.recordings_dir / TURNS_FOLDER), result.detail())
            except Exception as exc:  # Redis down: the archive's own purge record stands
                log.warning("scheduled purge not in the audit log (%s); the archive records it: %s", exc,
                            result.detail())
        return result

    async def run(self) -> None:
        """Purge once a day until cancelled."""
        await self.sleep(await self.first_wait_s())
        while True:
            await self.run_once()
            await self.sleep(self.every_s)
