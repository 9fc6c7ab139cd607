"""The index of call recordings: search by call, customer, agent, queue, time and outcome; legal holds; the access
log (who played or downloaded which call, when, and who was refused); the manifest's head.

One SQLite file (stdlib ``sqlite3``, WAL; ``run/recordings.sqlite3`` by default, ``IVR_RECORDINGS_INDEX_PATH``),
one connection per thread, every method blocking (from asyncio: ``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ivr.recordings.manifest import Entry, Head
from ivr.records.sqlite import PerThreadSqlite

__all__ = ["AccessEntry", "RecordingIndex", "RecordingRow", "Search"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    call_id TEXT PRIMARY KEY, path TEXT NOT NULL DEFAULT '', started_at REAL NOT NULL, ended_at REAL,
    duration_s REAL NOT NULL DEFAULT 0, caller_customer TEXT, agent TEXT, queue TEXT, outcome TEXT NOT NULL DEFAULT '',
    intent TEXT, channels INTEGER NOT NULL DEFAULT 0, rate INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '', encrypted INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,
    problem TEXT, purged_at REAL, held INTEGER NOT NULL DEFAULT 0, hold_reason TEXT, held_by TEXT, held_at REAL,
    timeline TEXT NOT NULL DEFAULT '{}', flags TEXT NOT NULL DEFAULT '[]', indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_started ON recordings (started_at);
CREATE INDEX IF NOT EXISTS recordings_customer ON recordings (caller_customer, started_at);
CREATE INDEX IF NOT EXISTS recordings_agent ON recordings (agent, started_at);
CREATE INDEX IF NOT EXISTS recordings_queue ON recordings (queue, started_at);
CREATE TABLE IF NOT EXISTS access (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, who TEXT NOT NULL, role TEXT NOT NULL,
    call_id TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS access_call ON access (call_id, at);
CREATE TABLE IF NOT EXISTS manifest_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
    hash TEXT NOT NULL);
"""

STATES = ("ok", "missing", "purged")


@dataclass(frozen=True, slots=True)
class RecordingRow:
    """One call's recording, as indexed."""

    call_id: str
    """Asterisk's uniqueid of the call."""
    path: str
    """The recording, relative to the recordings folder ("" when none was found)."""
    started_at: float
    """When the call started (epoch seconds): the recording's zero."""
    ended_at: float | None
    """When it hung up."""
    duration_s: float
    """Length of the recording."""
    customer: str | None
    """The customer id, when the caller was known."""
    agent: str | None
    """Who answered."""
    queue: str | None
    """The queue the call went to."""
    outcome: str
    """How the call ended up (``Outcome`` value)."""
    intent: str | None
    """The final intent."""
    channels: int
    """2: caller left, what the caller heard (IVR, agent) right; 1: an older mixed recording."""
    rate: int
    """Sample rate of the recording."""
    bytes: int
    """Size as stored."""
    sha256: str
    """SHA-256 as stored (the manifest has it too)."""
    encrypted: bool
    """Stored encrypted (AES-256-GCM); the player decrypts it."""
    state: str
    """"ok", "missing" (no recording was found when the call ended) or "purged" (retention removed it)."""
    problem: str | None
    """Why it is missing, when it is."""
    purged_at: float | None
    """When retention removed it."""
    held: bool
    """Under legal hold: no purge removes it."""
    hold_reason: str | None
    held_by: str | None
    held_at: float | None
    timeline: dict[str, Any]
    """``Timeline.to_dict()`` without flags (they are in ``flags``)."""
    flags: list[dict[str, Any]]
    """Moments to hear: [{at_s, kind, text}] (the quality checks set them)."""

    def public(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["has_audio"] = self.state == "ok"
        return data


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """Who did what with a recording, when."""

    at: float
    who: str
    role: str
    call_id: str
    action: str
    """"play", "download", "denied", "refused" (missing, damaged, purged), "hold", "release", "purge"."""
    detail: str


@dataclass(frozen=True, slots=True)
class Search:
    """What /qa searches by (every field optional; all given must match)."""

    call_id: str | None = None
    """The call's id, or its start."""
    customer: str | None = None
    agent: str | None = None
    queue: str | None = None
    outcome: str | None = None
    since: float | None = None
    """Calls started at or after (epoch seconds)."""
    until: float | None = None
    """Calls started before."""
    held: bool | None = None
    flagged: bool | None = None
    offset: int = 0
    limit: int = 50


_COLUMNS = ("call_id", "path", "started_at", "ended_at", "duration_s", "caller_customer", "agent", "queue", "outcome",
            "intent", "channels", "rate", "bytes", "sha256", "encrypted", "state", "problem", "purged_at", "held",
            "hold_reason", "held_by", "held_at", "timeline", "flags")


def _row(values: Sequence[Any]) -> RecordingRow:
    data = dict(zip(_COLUMNS, values, strict=True))
    data["customer"] = data.pop("caller_customer")
    data["encrypted"], data["held"] = bool(data["encrypted"]), bool(data["held"])
    data["timeline"], data["flags"] = json.loads(data["timeline"] or "{}"), json.loads(data["flags"] or "[]")
    return RecordingRow(**data)


class RecordingIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._files = PerThreadSqlite(path, _SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return self._files.connection()

    # --- writing

    def upsert(self, row: RecordingRow) -> None:
        """Index (or re-index) a call's recording; a hold and flags already set are kept."""
        values = {c: getattr(row, "customer" if c == "caller_customer" else c) for c in _COLUMNS}
        values["timeline"], values["flags"] = json.dumps(row.timeline, ensure_ascii=False), json.dumps(row.flags)
        values["encrypted"], values["held"] = int(row.encrypted), int(row.held)
        keep = {"held", "hold_reason", "held_by", "held_at", "flags"}
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "call_id" and c not in keep)
        self._db().execute(
            f"INSERT INTO recordings ({', '.join(_COLUMNS)}, indexed_at) VALUES "
            f"({', '.join('?' for _ in _COLUMNS)}, ?) ON CONFLICT (call_id) DO UPDATE SET {updates}, "
            f"indexed_at = excluded.indexed_at", [*values.values(), time.time()])

    def set_flags(self, call_id: str, flags: list[dict[str, Any]]) -> bool:
        cursor = self._db().execute("UPDATE recordings SET flags = ? WHERE call_id = ?",
                                    (json.dumps(flags, ensure_ascii=False), call_id))
        return cursor.rowcount > 0

    def set_hold(self, call_id: str, held: bool, who: str, reason: str) -> bool:
        cursor = self._db().execute(
            "UPDATE recordings SET held = ?, hold_reason = ?, held_by = ?, held_at = ? WHERE call_id = ?",
            (int(held), reason if held else None, who if held else None, time.time() if held else None, call_id))
        return cursor.rowcount > 0

    def mark_purged(self, call_id: str, at: float) -> bool:
        """Purged, unless a hold arrived meanwhile (the purge checks the answer before deleting the file)."""
        cursor = self._db().execute("UPDATE recordings SET state = 'purged', purged_at = ? WHERE call_id = ? "
                                    "AND held = 0 AND state != 'purged'", (at, call_id))
        return cursor.rowcount > 0

    def log_access(self, who: str, role: str, call_id: str, action: str, detail: str = "") -> None:
        self._db().execute("INSERT INTO access (at, who, role, call_id, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
                           (time.time(), who, role, call_id, action, detail))

    def set_head(self, entry: Entry) -> None:
        self._db().execute("INSERT INTO manifest_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE "
                           "SET seq = excluded.seq, hash = excluded.hash", (entry.seq, entry.hash))

    # --- reading

    def head(self) -> Head | None:
        row = self._db().execute("SELECT seq, hash FROM manifest_head WHERE id = 1").fetchone()
        return Head(int(row[0]), str(row[1])) if row else None

    def get(self, call_id: str) -> RecordingRow | None:
        row = self._db().execute(f"SELECT {', '.join(_COLUMNS)} FROM recordings WHERE call_id = ?",
                                 (call_id,)).fetchone()
        return _row(row) if row else None

    def search(self, q: Search) -> tuple[int, list[RecordingRow]]:
        """(how many match, this page), newest first."""
        where: list[str] = []
        args: list[Any] = []
        if q.call_id:
            where.append("call_id LIKE ? ESCAPE '\\'")
            args.append(q.call_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        for column, value in (("caller_customer", q.customer), ("agent", q.agent), ("queue", q.queue),
                              ("outcome", q.outcome)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if q.since is not None:
            where.append("started_at >= ?")
            args.append(q.since)
        if q.until is not None:
            where.append("started_at < ?")
            args.append(q.until)
        if q.held is not None:
            where.append("held = ?")
            args.append(int(q.held))
        if q.flagged is not None:
            where.append("flags != '[]'" if q.flagged else "flags = '[]'")
        sql_where = f"WHERE {' AND '.join(where)}" if where else ""
        db = self._db()
        total = int(db.execute(f"SELECT COUNT(*) FROM recordings {sql_where}", args).fetchone()[0])
        rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM recordings {sql_where} ORDER BY started_at DESC, call_id "
                          f"LIMIT ? OFFSET ?", [*args, q.limit, q.offset]).fetchall()
        return total, [_row(r) for r in rows]

    def expired(self, before: float) -> list[RecordingRow]:
        """Recordings of calls started before ``before``, not held, not purged yet."""
        rows = self._db().execute(f"SELECT {', '.join(_COLUMNS)} FROM recordings WHERE started_at < ? AND held = 0 "
                                  f"AND state != 'purged' ORDER BY started_at", (before,)).fetchall()
        return [_row(r) for r in rows]

    def held_ids(self) -> set[str]:
        return {str(r[0]) for r in self._db().execute("SELECT call_id FROM recordings WHERE held = 1")}

    def indexed_paths(self) -> set[str]:
        return {str(r[0]) for r in self._db().execute("SELECT path FROM recordings WHERE path != ''")}

    def access(self, call_id: str | None = None, limit: int = 100) -> list[AccessEntry]:
        sql = "SELECT at, who, role, call_id, action, detail FROM access"
        args: list[Any] = []
        if call_id:
            sql += " WHERE call_id = ?"
            args.append(call_id)
        rows = self._db().execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [AccessEntry(float(a), str(w), str(r), str(c), str(x), str(d)) for a, w, r, c, x, d in rows]
