"""Writing finished calls to the archive from the controller: in a thread, never failing or holding a call."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ivr.records.archive import Archive
from ivr.records.call import CallRecord
from ivr.voice.training.labels import archive_rows

log = logging.getLogger(__name__)


class CallArchiver:
    """The controller's side of the archive: ``archive(call)`` when the IVR is done and when the call ends,
    ``disposition(...)`` when an agent closes the call. Failures are logged (once until it works again)."""

    def __init__(self, path: Path, flow_id: str) -> None:
        self.path = path
        self.flow_id = flow_id
        self._archive: Archive | None = None
        self._failing = False
        self._lock = asyncio.Lock()
        """One write at a time from this process (SQLite would serialize them anyway; this keeps threads free)."""

    def _open(self) -> Archive:
        if self._archive is None:
            self._archive = Archive(self.path)
        return self._archive

    async def archive(self, call: CallRecord, agent_intent: str = "agent", ivr_ended_at: float | None = None) -> bool:
        """Write (or complete) ``call`` in the archive; False (logged) when it could not be written."""
        try:
            rows = archive_rows(call, self.flow_id, agent_intent, ivr_ended_at)
            async with self._lock:
                await asyncio.to_thread(lambda: self._open().record_call(*rows))
        except Exception as exc:
            if not self._failing:
                log.error("call %s: not archived (%s); calls go on without the archive", call.call_id, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("archive writable again (%s)", self.path)
        self._failing = False
        return True

    async def disposition(self, call_id: str, disposition: str, reason: str | None, at: float) -> bool:
        try:
            async with self._lock:
                await asyncio.to_thread(lambda: self._open().set_disposition(call_id, disposition, reason, at))
        except Exception as exc:
            log.error("call %s: disposition not archived (%s)", call_id, exc)
            return False
        return True
