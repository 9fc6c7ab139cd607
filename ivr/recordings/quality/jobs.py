"""The quality checks' queue: one row per call, from queued to done, kept in SQLite so a restart resumes it.

``run/quality.sqlite3`` (``IVR_QA_DB_PATH``), WAL, one connection per thread; blocking (from asyncio: a thread).
A job claimed by a worker that then died (the process killed, the machine restarted) is ``running`` forever in
the table: :meth:`QualityJobs.resume` puts every such job back in the queue when a worker process starts.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.records.sqlite import PerThreadSqlite

__all__ = ["Job", "Progress", "QualityJobs", "ReviewItem"]

MAX_ATTEMPTS = 3
"""A call whose check fails this often (a damaged recording) is given up, with its error."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    call_id TEXT PRIMARY KEY, call_started_at REAL NOT NULL DEFAULT 0, queue TEXT, agent TEXT,
    queued_at REAL NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, started_at REAL,
    finished_at REAL, audio_s REAL NOT NULL DEFAULT 0, cpu_s REAL NOT NULL DEFAULT 0, wall_s REAL NOT NULL DEFAULT 0,
    score INTEGER, flagged INTEGER NOT NULL DEFAULT 0, source TEXT, result TEXT, error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, queued_at);
CREATE INDEX IF NOT EXISTS jobs_flagged ON jobs (flagged, finished_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

STATES = ("queued", "running", "done", "skipped", "failed")


@dataclass(frozen=True, slots=True)
class Job:
    """A call waiting to be checked."""

    call_id: str
    attempts: int
    """Tries so far, this one included."""


@dataclass(frozen=True, slots=True)
class Progress:
    """What /qa shows of the queue."""

    queued: int
    running: int
    done: int
    skipped: int
    """Calls with nothing to check (no agent answered, no recording)."""
    failed: int
    flagged: int
    """Done and flagged: the review list's length."""
    audio_s_done: float
    """Agent talk transcribed so far."""
    cpu_s_done: float
    wall_s_done: float
    last_done_at: float | None

    def to_dict(self) -> dict[str, Any]:
        rtf = self.cpu_s_done / self.audio_s_done if self.audio_s_done else None
        return {"queued": self.queued, "running": self.running, "done": self.done, "skipped": self.skipped,
                "failed": self.failed, "flagged": self.flagged, "audio_s_done": round(self.audio_s_done, 1),
                "cpu_s_per_audio_s": round(rtf, 3) if rtf is not None else None,
                "last_done_at": self.last_done_at}


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A flagged call on the QA review list."""

    call_id: str
    call_started_at: float
    queue: str | None
    agent: str | None
    score: int
    findings: list[dict[str, Any]]
    """[{item, kind, at_s, text}], in the call's order: the moments to hear."""
    finished_at: float


class QualityJobs:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._files = PerThreadSqlite(path, _SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return self._files.connection()

    # --- the queue

    def enqueue(self, call_id: str, call_started_at: float, queue: str | None, agent: str | None,
                at: float | None = None) -> bool:
        """Queue a call once (True); a call already known (queued, done, ...) is left as it is (False)."""
        cursor = self._db().execute(
            "INSERT OR IGNORE INTO jobs (call_id, call_started_at, queue, agent, queued_at, state) "
            "VALUES (?, ?, ?, ?, ?, 'queued')", (call_id, call_started_at, queue, agent, at or time.time()))
        return cursor.rowcount > 0

    def requeue(self, call_id: str) -> bool:
        """Check a call again (e.g. after the checklist changed)."""
        cursor = self._db().execute("UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, queued_at = ? "
                                    "WHERE call_id = ? AND state != 'running'", (time.time(), call_id))
        return cursor.rowcount > 0

    def claim(self) -> Job | None:
        """The oldest queued call, now running (one worker gets each job)."""
        row = self._db().execute(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ? WHERE call_id = "
            "(SELECT call_id FROM jobs WHERE state = 'queued' ORDER BY queued_at, call_id LIMIT 1) "
            "AND state = 'queued' RETURNING call_id, attempts", (time.time(),)).fetchone()
        return Job(str(row[0]), int(row[1])) if row else None

    def finish(self, call_id: str, *, score: int, flagged: bool, audio_s: float, cpu_s: float, wall_s: float,
               source: str, result: dict[str, Any]) -> None:
        self._db().execute(
            "UPDATE jobs SET state = 'done', finished_at = ?, score = ?, flagged = ?, audio_s = ?, cpu_s = ?, "
            "wall_s = ?, source = ?, result = ?, error = NULL WHERE call_id = ?",
            (time.time(), score, int(flagged), audio_s, cpu_s, wall_s, source, json.dumps(result, ensure_ascii=False),
             call_id))

    def skip(self, call_id: str, reason: str) -> None:
        self._db().execute("UPDATE jobs SET state = 'skipped', finished_at = ?, error = ? WHERE call_id = ?",
                           (time.time(), reason, call_id))

    def fail(self, call_id: str, error: str, final: bool = False) -> str:
        """Back in the queue, or given up (``final``, or after MAX_ATTEMPTS); returns the new state."""
        db = self._db()
        row = db.execute("SELECT attempts FROM jobs WHERE call_id = ?", (call_id,)).fetchone()
        state = "failed" if final or row is None or int(row[0]) >= MAX_ATTEMPTS else "queued"
        db.execute("UPDATE jobs SET state = ?, finished_at = ?, error = ? WHERE call_id = ?",
                   (state, time.time(), error[:500], call_id))
        return state

    def resume(self) -> int:
        """Jobs a dead worker left running, queued again; how many."""
        return self._db().execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'").rowcount

    # --- watermark of the recordings already seen

    def meta(self, key: str) -> str | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db().execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                           "value = excluded.value", (key, value))

    # --- reading

    def state(self, call_id: str) -> dict[str, Any] | None:
        row = self._db().execute(
            "SELECT call_id, state, attempts, score, flagged, source, result, error, audio_s, cpu_s, finished_at "
            "FROM jobs WHERE call_id = ?", (call_id,)).fetchone()
        if row is None:
            return None
        keys = ("call_id", "state", "attempts", "score", "flagged", "source", "result", "error", "audio_s", "cpu_s",
                "finished_at")
        data = dict(zip(keys, row, strict=True))
        data["flagged"] = bool(data["flagged"])
        data["result"] = json.loads(data["result"]) if data["result"] else None
        return data

    def progress(self) -> Progress:
        db = self._db()
        counts = {state: 0 for state in STATES}
        for state, count in db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[str(state)] = int(count)
        flagged, audio, cpu, wall, last = db.execute(
            "SELECT COALESCE(SUM(flagged), 0), COALESCE(SUM(audio_s), 0), COALESCE(SUM(cpu_s), 0), "
            "COALESCE(SUM(wall_s), 0), MAX(finished_at) FROM jobs WHERE state = 'done'").fetchone()
        return Progress(counts["queued"], counts["running"], counts["done"], counts["skipped"], counts["failed"],
                        int(flagged), float(audio), float(cpu), float(wall), float(last) if last else None)

    def review(self, limit: int = 50, offset: int = 0) -> tuple[int, list[ReviewItem]]:
        """Flagged calls, the most recently checked first: (how many, this page)."""
        db = self._db()
        total = int(db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'done' AND flagged = 1").fetchone()[0])
        rows = db.execute(
            "SELECT call_id, call_started_at, queue, agent, score, result, finished_at FROM jobs "
            "WHERE state = 'done' AND flagged = 1 ORDER BY finished_at DESC, call_id LIMIT ? OFFSET ?",
            (limit, offset)).fetchall()
        items = [ReviewItem(str(c), float(s), q, a, int(score or 0), (json.loads(r) if r else {}).get("findings", []),
                            float(f or 0)) for c, s, q, a, score, r, f in rows]
        return total, items
