"""Room on the recordings disk, watched: a full disk never stops a call, but it must never go unnoticed.

When the disk under ``recordings/`` fills up, Asterisk's MixMonitor cannot open (or grow) the call's file and the
call goes on unrecorded: Asterisk only logs a line of its own. So the controller looks: every ``every_s`` seconds
(and when a call's recording turns out missing) it reads the free space and inodes (``statvfs``), logs an ERROR
once when the disk is full or nearly ("calls are NOT being recorded"), says when there is room again, and reports
``ivr_up{component="recordings_disk"}`` (1: room, 0: full) for an alert.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ivr import metrics

log = logging.getLogger(__name__)

METRIC = "recordings_disk"
"""``ivr_up{component="recordings_disk"}``."""
MIN_FREE_BYTES = 64 * 1024 * 1024
"""Below this the disk counts as full: at 32 kB/s per recorded call, 60 calls fill 64 MB in about half a minute."""
MIN_FREE_INODES = 64
"""Below this no new day folder or recording file can be counted on."""


@dataclass(frozen=True, slots=True)
class Room:
    """What is left on the filesystem holding the recordings."""

    path: Path
    """The folder looked at (the recordings folder)."""
    free_bytes: int
    """Bytes an unprivileged writer may still use."""
    free_inodes: int
    """Files that may still be created."""

    @property
    def full(self) -> bool:
        return self.free_bytes < MIN_FREE_BYTES or self.free_inodes < MIN_FREE_INODES

    def describe(self) -> str:
        return f"{self.path} has {self.free_bytes / 1e6:.1f} MB and {self.free_inodes} inodes free"


def room(path: Path) -> Room | None:
    """The room left under ``path`` (None if it cannot be read: a missing folder says nothing about the disk)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return Room(path, stat.f_bavail * stat.f_frsize, stat.f_favail)


class DiskWatch:
    """Logs when the recordings disk fills up and when it has room again; ``full`` is the last reading."""

    def __init__(self, path: Path, every_s: float = 10.0) -> None:
        self.path = path
        self.every_s = every_s
        self.full = False
        self._task: asyncio.Task[None] | None = None

    def check(self) -> Room | None:
        """Read the room now; log the change if the disk became full or has room again."""
        found = room(self.path)
        if found is None:
            return None
        if found.full and not self.full:
            log.error("the recordings disk is full (%s): calls go on but are NOT recorded; free space (ivr recordings"
                      " purge-turns, retention) or give recordings a bigger disk", found.describe())
        elif not found.full and self.full:
            log.warning("the recordings disk has room again (%s): calls are recorded again", found.describe())
        self.full = found.full
        metrics.set_up(METRIC, not found.full)
        return found

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="recordings-disk")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self.check)
            await asyncio.sleep(self.every_s)
