"""The durable archive of finished calls and their turns: what navigation analytics, KPIs, labels,
clusters of failed turns and acoustic replay read, over weeks (the live record in Redis lives 7 days).

One SQLite file (stdlib ``sqlite3``, WAL: the controller writes while the CLI and the pages read), by default
``run/archive.sqlite3`` (``Settings.archive_file``). The controller writes a call when its IVR part is over and
again when it hangs up (an upsert: the later write completes the earlier); an agent's disposition updates it. A
write never blocks or fails a call: callers of :class:`Archive` run it in a thread and log failures.

Interface (stable: the replay and suggestions of the trainer loop read it):

- :class:`ArchivedTurn`, :class:`ArchivedCall`: frozen rows, one docstring per field.
- ``Archive.turns(since, flow_id=None, failed_only=False, labeled_only=False, until=None, limit=None)``
  -> ``list[ArchivedTurn]``, oldest first; ``Archive.iter_turns(...)`` the same in batches (large windows).
- ``Archive.set_label(call_id, index, label, dialect=None, by="", source="trainer")``: one turn's label.
- ``Archive.label_cluster(cluster_id, label, revision, dialect=None, by="")``: every turn of a cluster, in one
  transaction; :class:`ClusterChanged` (a 409) when its revision is not ``revision`` any more.
- ``Archive.clusters(...)``, ``Archive.cluster_turns(...)``: failed turns grouped by what was heard, paged.
- ``Archive.calls(since, until=None)`` -> ``list[ArchivedCall]``; ``Archive.set_disposition(...)``.
- ``Archive.turn_audio_before(...)``/``Archive.forget_audio(...)``: retention (``ivr recordings purge-turns``).

Labels: ``label`` is the intent a turn meant, ``label_source`` says where it came from: ``"key"`` (speech failed,
then the caller pressed that intent's key), ``"correction"`` (the caller corrected the engine), ``"disposition"``
(the agent's disposition named the reason), all *suggested*; ``"trainer"`` (a person confirmed or chose it).
A suggestion never overwrites a trainer's label, and a stronger suggestion (key > correction > disposition)
replaces a weaker one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ivr.privacy.redaction import redact
from ivr.records.sqlite import PerThreadSqlite

__all__ = ["LABEL_SOURCES", "SUGGESTED", "Archive", "ArchivedCall", "ArchivedTurn", "ClusterChanged",
           "ClusterSummary", "NoSuchCluster", "NoSuchTurn", "heard_key", "heard_similarity"]

SUGGESTED = ("key", "correction", "disposition")
"""Label sources that are suggestions, strongest first."""
LABEL_SOURCES = ("trainer", *SUGGESTED)
"""Every label source, strongest first."""
#: Failed turns heard this alike (0..1, see :func:`heard_similarity`) fall in one cluster.
CLUSTER_SIMILARITY = 0.5


@dataclass(frozen=True, slots=True)
class ArchivedTurn:
    """One turn of a finished call, as archived."""

    call_id: str
    """The call's id (Asterisk uniqueid)."""
    index: int
    """Position of the turn in the call, from 1 (the number in its audio file's name)."""
    flow_id: str
    """The flow the call walked ("hotline")."""
    flow_version: int | None
    """Its published version (None: run from its file)."""
    node: str
    """The node that asked."""
    kind: str
    """"ask", "confirm" or "offer"."""
    language: str
    """Language the turn was recognized in."""
    dialect: str | None
    """Dialect of the variant that matched live, if any."""
    transcript: str
    """What the recognizer heard (best hypothesis)."""
    alternatives: tuple[tuple[str, float], ...]
    """n-best hypotheses (text, confidence), best first."""
    intent: str | None
    """The intent the engine understood live (an ask turn: its best candidate, acted on or not)."""
    score: float
    """Its score, 0..1."""
    confidence: float
    """Recognizer confidence of the transcript."""
    dtmf: str
    """Keys pressed during the turn."""
    audio: str | None
    """The turn's recording, relative to ``Settings.recordings_dir``; None when none was kept or it was purged."""
    audio_rate: int | None
    """Sample rate of the recording (the call's ``heard_at_hz``), when known."""
    started_at: float
    """When the prompt started (epoch seconds)."""
    decided_at: float | None
    """When the engine decided on the turn."""
    error: str | None
    """Why recognition failed, when it did."""
    live_outcome: str
    """What the turn did live: "act" (acted on the intent), "confirmed", "confirm_rejected", "corrected",
    "no_match", "no_input", "key", "agent" (asked for a person), "hangup", "error"; for confirm and offer turns
    "answer"."""
    failed: bool
    """Speech was given a chance and did not lead to an action: no_match, confirm_rejected, corrected, error
    (ask turns without keys). The turns trainers label."""
    next_step: str
    """What the caller did next, for trainers ("pressed 2: balance", "corrected to loan", "hung up", ...)."""
    call_outcome: str
    """How the call ended up (``Outcome`` value)."""
    label: str | None
    """The intent the caller meant, when known (see the module's doc)."""
    label_source: str | None
    """"trainer", "key", "correction" or "disposition"."""
    label_dialect: str | None
    """Dialect a trainer set on the label (for a dialect variant)."""
    labeled_by: str | None
    """Who set a trainer label."""
    cluster: int | None
    """The cluster of failed turns heard alike it belongs to (failed turns only)."""

    @property
    def confirmed(self) -> bool:
        """A person set or confirmed the label."""
        return self.label_source == "trainer"


@dataclass(frozen=True, slots=True)
class ArchivedCall:
    """One finished call, as archived: what KPIs and navigation analytics count."""

    call_id: str
    """Asterisk's uniqueid."""
    caller: str
    """Caller number (for repeat contacts); empty when withheld."""
    flow_id: str
    """The flow the call walked."""
    flow_version: int | None
    """Its version (None: from its file)."""
    language: str
    """Language of the call."""
    dialect: str | None
    """The caller's dialect, if known."""
    started_at: float
    """When the controller took the call."""
    ivr_ended_at: float | None
    """When the IVR handed the call on (or the caller left it)."""
    ended_at: float | None
    """When the channel hung up (None: not yet known)."""
    outcome: str
    """``Outcome`` value ("self_service", "queued", "answered", "callback", "abandoned", "error"), "" unknown."""
    intent: str | None
    """The final intent."""
    queue: str | None
    """Queue the call was sent to."""
    agent: str | None
    """Who answered."""
    self_served: bool
    """Served by the IVR itself."""
    queued_at: float | None
    """When the call joined the line for a person."""
    answered_at: float | None
    """When a person answered."""
    asked_person: bool
    """The caller asked for a person (key 0 or the agent intent)."""
    left_in_ivr: bool
    """The caller hung up while still in the IVR."""
    callback_requested: bool
    """The call ended with a callback accepted."""
    callback_kept: bool
    """The callback reached the customer."""
    heard_at_hz: int | None
    """Rate the caller was heard at."""
    disposition: str | None
    """The agent's disposition ("resolved", ...), when one was given."""
    disposition_reason: str | None
    """The intent the disposition names as the reason for the call."""
    disposition_at: float | None
    """When the disposition was given (after-call work ends)."""


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    """A cluster of failed turns heard alike, within a window."""

    id: int
    """Stable id."""
    flow_id: str
    """The flow its turns belong to."""
    language: str
    """Language of its turns."""
    heard: str
    """What was heard, as its first turn heard it ("" for silence)."""
    size: int
    """Failed turns in the window."""
    labeled: int
    """Of them, with a trainer's label."""
    suggested: str | None
    """The most frequent label among them (trainer's first, else suggested)."""
    suggested_source: str | None
    """Where that label comes from."""
    nodes: tuple[str, ...]
    """Nodes its turns were asked at."""
    revision: int
    """Changes each time the cluster is labeled: a label must name the revision it was decided on."""
    label: str | None
    """The label last set on the whole cluster."""


class ClusterChanged(Exception):
    """The cluster was labeled by someone else since the trainer saw it (HTTP 409); nothing was written."""


class NoSuchCluster(LookupError):
    """No cluster with that id."""


class NoSuchTurn(LookupError):
    """No archived turn with that call id and index."""


# --- what was heard, and how alike two turns were heard (pure)


def heard_key(text: str) -> str:
    """A transcript as the archive compares it: lower case, single spaces."""
    return " ".join(text.lower().split())


def _grams(text: str) -> set[str]:
    squeezed = text.replace(" ", "")
    if len(squeezed) < 2:
        return {squeezed} if squeezed else set()
    return {squeezed[i:i + 2] for i in range(len(squeezed) - 1)}


def heard_signature(transcript: str, alternatives: Sequence[str] = ()) -> frozenset[str]:
    """Character bigrams of the transcript and its n-best (Korean words are short: characters, not words)."""
    grams = _grams(heard_key(transcript))
    for text in alternatives[:3]:
        grams |= _grams(heard_key(text))
    return frozenset(grams)


def heard_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two signatures; two silences are alike (1.0), silence and words are not."""
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class _Signatures:
    """The clusters' signatures of one flow and language, indexed by bigram: a new failed turn is compared only
    with the clusters it shares a bigram with (thousands of clusters, each turn archived in well under a ms)."""

    def __init__(self) -> None:
        self.sizes: dict[int, int] = {}
        self.postings: dict[str, list[int]] = {}
        self.empty: int | None = None
        """The cluster of silences (an empty signature), if any."""
        self.last = 0
        """The newest cluster id known."""

    def add(self, cluster_id: int, signature: frozenset[str]) -> None:
        self.sizes[cluster_id] = len(signature)
        self.last = max(self.last, cluster_id)
        if not signature and self.empty is None:
            self.empty = cluster_id
        for gram in signature:
            self.postings.setdefault(gram, []).append(cluster_id)

    def most_alike(self, signature: frozenset[str]) -> int | None:
        """The cluster most alike (Jaccard >= CLUSTER_SIMILARITY; ties: the oldest), or None."""
        if not signature:
            return self.empty
        shared: Counter[int] = Counter()
        for gram in signature:
            shared.update(self.postings.get(gram, ()))
        best_id, best = None, CLUSTER_SIMILARITY
        for cluster_id, overlap in sorted(shared.items()):
            similarity = overlap / (len(signature) + self.sizes[cluster_id] - overlap)
            if similarity > best or (similarity == best and best_id is None):
                best_id, best = cluster_id, similarity
        return best_id


# --- the store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
  call_id TEXT PRIMARY KEY, caller TEXT NOT NULL DEFAULT '', flow_id TEXT NOT NULL DEFAULT '',
  flow_version INTEGER, language TEXT NOT NULL DEFAULT '', dialect TEXT, started_at REAL NOT NULL DEFAULT 0,
  ivr_ended_at REAL, ended_at REAL, outcome TEXT NOT NULL DEFAULT '', intent TEXT, queue TEXT, agent TEXT,
  self_served INTEGER NOT NULL DEFAULT 0, queued_at REAL, answered_at REAL,
  asked_person INTEGER NOT NULL DEFAULT 0, left_in_ivr INTEGER NOT NULL DEFAULT 0,
  callback_requested INTEGER NOT NULL DEFAULT 0, callback_kept INTEGER NOT NULL DEFAULT 0, heard_at_hz INTEGER,
  disposition TEXT, disposition_reason TEXT, disposition_at REAL, archived INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_caller ON calls (caller, started_at);
CREATE TABLE IF NOT EXISTS turns (
  call_id TEXT NOT NULL, idx INTEGER NOT NULL, flow_id TEXT NOT NULL, flow_version INTEGER, node TEXT NOT NULL,
  kind TEXT NOT NULL, language TEXT NOT NULL, dialect TEXT, transcript TEXT NOT NULL, alternatives TEXT NOT NULL,
  intent TEXT, score REAL NOT NULL, confidence REAL NOT NULL, dtmf TEXT NOT NULL, audio TEXT, audio_rate INTEGER,
  started_at REAL NOT NULL, decided_at REAL, error TEXT, live_outcome TEXT NOT NULL, failed INTEGER NOT NULL,
  next_step TEXT NOT NULL, call_outcome TEXT NOT NULL, label TEXT, label_source TEXT, label_dialect TEXT,
  labeled_by TEXT, labeled_at REAL, cluster INTEGER, audio_purged_at REAL,
  PRIMARY KEY (call_id, idx)
);
CREATE INDEX IF NOT EXISTS turns_started ON turns (started_at);
CREATE INDEX IF NOT EXISTS turns_failed ON turns (failed, started_at);
CREATE INDEX IF NOT EXISTS turns_cluster ON turns (cluster, started_at);
CREATE TABLE IF NOT EXISTS clusters (
  id INTEGER PRIMARY KEY, flow_id TEXT NOT NULL, language TEXT NOT NULL, heard TEXT NOT NULL,
  signature TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 0, label TEXT, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS clusters_heard ON clusters (flow_id, language, heard);
CREATE TABLE IF NOT EXISTS purges (
  at REAL NOT NULL, who TEXT NOT NULL, before REAL NOT NULL, files INTEGER NOT NULL, bytes INTEGER NOT NULL,
  detail TEXT NOT NULL
);
"""

_TURN_COLUMNS = ("call_id", "idx", "flow_id", "flow_version", "node", "kind", "language", "dialect", "transcript",
                 "alternatives", "intent", "score", "confidence", "dtmf", "audio", "audio_rate", "started_at",
                 "decided_at", "error", "live_outcome", "failed", "next_step", "call_outcome", "label",
                 "label_source", "label_dialect", "labeled_by", "cluster")
_CALL_COLUMNS = tuple(f.name for f in fields(ArchivedCall))
_SOURCE_RANK = "CASE {col} WHEN 'trainer' THEN 4 WHEN 'key' THEN 3 WHEN 'correction' THEN 2 " \
               "WHEN 'disposition' THEN 1 ELSE 0 END"
_ALTERNATIVES, _FAILED, _CLUSTER = (_TURN_COLUMNS.index(c) for c in ("alternatives", "failed", "cluster"))


def _upsert_call_sql() -> tuple[tuple[str, ...], str]:
    """What a later write of a call changes: everything it knows now, but the IVR's end as first written, the
    times and agent only when it knows them, and never the disposition (it comes from the desk)."""
    names = tuple(n for n in _CALL_COLUMNS if not n.startswith("disposition"))
    updates = ", ".join(
        f"{n} = COALESCE(calls.{n}, excluded.{n})" if n == "ivr_ended_at" else
        f"{n} = COALESCE(excluded.{n}, calls.{n})" if n in ("ended_at", "queued_at", "answered_at", "agent")
        else f"{n} = excluded.{n}"
        for n in names if n != "call_id")
    return names, (f"INSERT INTO calls ({', '.join(names)}, archived) VALUES ({', '.join('?' * len(names))}, 1) "
                   f"ON CONFLICT (call_id) DO UPDATE SET {updates}, archived = 1")


def _upsert_turn_sql() -> str:
    """What a later write of a turn changes: what happened live, not a purged recording, not its cluster, and its
    label only with stronger evidence (a trainer's label is never replaced)."""
    live = [c for c in _TURN_COLUMNS if c not in ("call_id", "idx", "label", "label_source", "label_dialect",
                                                   "labeled_by", "cluster", "audio")]
    new_rank, old_rank = _SOURCE_RANK.format(col="excluded.label_source"), _SOURCE_RANK.format(col="turns.label_source")
    stronger = f"excluded.label IS NOT NULL AND {new_rank} > {old_rank}"
    return (f"INSERT INTO turns ({', '.join(_TURN_COLUMNS)}) VALUES ({', '.join('?' * len(_TURN_COLUMNS))}) "
            f"ON CONFLICT (call_id, idx) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in live)}, "
            f"audio = CASE WHEN turns.audio_purged_at IS NULL THEN excluded.audio ELSE NULL END, "
            f"cluster = COALESCE(turns.cluster, excluded.cluster), "
            f"label = CASE WHEN {stronger} THEN excluded.label ELSE turns.label END, "
            f"label_dialect = CASE WHEN {stronger} THEN excluded.label_dialect ELSE turns.label_dialect END, "
            f"labeled_by = CASE WHEN {stronger} THEN excluded.labeled_by ELSE turns.labeled_by END, "
            f"label_source = CASE WHEN {stronger} THEN excluded.label_source ELSE turns.label_source END")


_UPSERTED_CALL_COLUMNS, _UPSERT_CALL = _upsert_call_sql()
_UPSERT_TURN = _upsert_turn_sql()


def _turn(row: sqlite3.Row | tuple[Any, ...]) -> ArchivedTurn:
    values = list(row)
    values[9] = tuple((str(a[0]), float(a[1])) for a in json.loads(values[9]))  # alternatives
    values[20] = bool(values[20])  # failed
    return ArchivedTurn(*values)


_CALL_FLAGS = tuple(i for i, name in enumerate(_CALL_COLUMNS)
                    if name in ("self_served", "asked_person", "left_in_ivr", "callback_requested", "callback_kept"))


def _call(row: sqlite3.Row | tuple[Any, ...]) -> ArchivedCall:
    values = list(row)
    for i in _CALL_FLAGS:
        values[i] = bool(values[i])
    return ArchivedCall(*values)


class Archive:
    """The archive in one SQLite file; safe to use from several threads and processes.

    Every method is blocking (SQLite): from the event loop, run it with ``asyncio.to_thread``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._files = PerThreadSqlite(self.path, _SCHEMA)
        self._signatures: dict[tuple[str, str], _Signatures] = {}
        """Clusters' signatures by (flow, language), loaded once: new failed turns are compared to them."""
        self._signatures_lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        return self._files.connection()

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        self._files.close()

    # --- writing calls

    def record_call(self, call: ArchivedCall, turns: Sequence[ArchivedTurn]) -> None:
        """Insert or complete a call and its turns, in one transaction.

        What was written before and is not known now is kept (the IVR's end time, a disposition), and a turn's
        trainer label is never overwritten; a suggested label replaces a weaker one.
        """
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._upsert_call(db, call)
            for turn in turns:
                self._upsert_turn(db, turn)
            reason = db.execute("SELECT disposition_reason FROM calls WHERE call_id = ?", (call.call_id,)).fetchone()
            if reason and reason[0]:
                self._suggest_from_disposition(db, call.call_id, reason[0])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._forget_signatures()  # clusters made in the rolled-back transaction are gone
            raise

    def _forget_signatures(self) -> None:
        with self._signatures_lock:
            self._signatures.clear()

    def record_calls(self, calls: Sequence[tuple[ArchivedCall, Sequence[ArchivedTurn]]]) -> None:
        """Many calls in one transaction (imports, benches)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            for call, turns in calls:
                self._upsert_call(db, call)
                for turn in turns:
                    self._upsert_turn(db, turn)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._forget_signatures()
            raise

    def _upsert_call(self, db: sqlite3.Connection, call: ArchivedCall) -> None:
        db.execute(_UPSERT_CALL, [getattr(call, n) for n in _UPSERTED_CALL_COLUMNS])

    def _upsert_turn(self, db: sqlite3.Connection, turn: ArchivedTurn) -> None:
        turn = _redacted(turn)  # whatever the caller of the archive did, no personal data is written
        values = [getattr(turn, "index" if c == "idx" else c) for c in _TURN_COLUMNS]
        values[_ALTERNATIVES] = json.dumps([list(a) for a in turn.alternatives], ensure_ascii=False)
        values[_FAILED] = int(turn.failed)
        values[_CLUSTER] = self._cluster_for(db, turn) if turn.failed else None
        db.execute(_UPSERT_TURN, values)

    def _cluster_for(self, db: sqlite3.Connection, turn: ArchivedTurn) -> int:
        """The cluster a failed turn joins: the same words heard, else the most alike cluster, else a new one.

        Deterministic: the same turns archived in the same order always make the same clusters."""
        heard = heard_key(turn.transcript)
        row = db.execute("SELECT id FROM clusters WHERE flow_id = ? AND language = ? AND heard = ? LIMIT 1",
                         (turn.flow_id, turn.language, heard)).fetchone()
        if row:
            return int(row[0])
        signature = heard_signature(turn.transcript, [text for text, _ in turn.alternatives])
        with self._signatures_lock:
            known = self._known_signatures(db, turn.flow_id, turn.language)
            best_id = known.most_alike(signature)
            if best_id is not None:
                return best_id
            cursor = db.execute("INSERT INTO clusters (flow_id, language, heard, signature, created_at) "
                                "VALUES (?, ?, ?, ?, ?)",
                                (turn.flow_id, turn.language, heard,
                                 json.dumps(sorted(signature), ensure_ascii=False), time.time()))
            new_id = int(cursor.lastrowid or 0)
            known.add(new_id, signature)
            return new_id

    def _known_signatures(self, db: sqlite3.Connection, flow_id: str, language: str) -> _Signatures:
        key = (flow_id, language)
        known = self._signatures.get(key)
        if known is None:
            known = self._signatures[key] = _Signatures()
        # Another process may have added clusters since.
        for i, sig in db.execute("SELECT id, signature FROM clusters WHERE flow_id = ? AND language = ? AND id > ? "
                                 "ORDER BY id", (flow_id, language, known.last)):
            known.add(int(i), frozenset(json.loads(sig)))
        return known

    # --- dispositions

    def set_disposition(self, call_id: str, disposition: str, reason: str | None, at: float | None = None) -> None:
        """The agent's disposition (and the reason it names, an intent) on the call; the reason becomes the
        suggested label of the call's failed turns (source "disposition"). The call need not be archived yet."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO calls (call_id, disposition, disposition_reason, disposition_at) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT (call_id) DO UPDATE SET disposition = excluded.disposition, "
                       "disposition_reason = excluded.disposition_reason, disposition_at = excluded.disposition_at",
                       (call_id, redact(disposition), reason or None, at if at is not None else time.time()))
            if reason:
                self._suggest_from_disposition(db, call_id, reason)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _suggest_from_disposition(db: sqlite3.Connection, call_id: str, reason: str) -> None:
        db.execute("UPDATE turns SET label = ?, label_source = 'disposition' WHERE call_id = ? AND failed = 1 "
                   "AND label IS NULL", (reason, call_id))

    # --- reading

    def turns(self, since: float, flow_id: str | None = None, failed_only: bool = False, labeled_only: bool = False,
              until: float | None = None, limit: int | None = None) -> list[ArchivedTurn]:
        """Turns that started in [since, until), oldest first."""
        return list(self.iter_turns(since, flow_id, failed_only, labeled_only, until, limit))

    def iter_turns(self, since: float, flow_id: str | None = None, failed_only: bool = False,
                   labeled_only: bool = False, until: float | None = None, limit: int | None = None,
                   batch: int = 2000) -> Iterator[ArchivedTurn]:
        """As :meth:`turns`, fetched ``batch`` rows at a time (a 30-day replay never holds every row twice)."""
        where: list[str] = ["started_at >= ?"]
        args: list[Any] = [since]
        if until is not None:
            where.append("started_at < ?")
            args.append(until)
        if flow_id is not None:
            where.append("flow_id = ?")
            args.append(flow_id)
        if failed_only:
            where.append("failed = 1")
        if labeled_only:
            where.append("label IS NOT NULL")
        sql = (f"SELECT {', '.join(_TURN_COLUMNS)} FROM turns WHERE {' AND '.join(where)} "
               f"ORDER BY started_at, call_id, idx")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        cursor = self._db().execute(sql, args)
        while rows := cursor.fetchmany(batch):
            for row in rows:
                yield _turn(row)

    def turn(self, call_id: str, index: int) -> ArchivedTurn:
        row = self._db().execute(f"SELECT {', '.join(_TURN_COLUMNS)} FROM turns WHERE call_id = ? AND idx = ?",
                                 (call_id, index)).fetchone()
        if row is None:
            raise NoSuchTurn(f"no archived turn {index} of call {call_id}")
        return _turn(row)

    def calls(self, since: float, until: float | None = None) -> list[ArchivedCall]:
        """Archived calls that started in [since, until), oldest first."""
        sql = f"SELECT {', '.join(_CALL_COLUMNS)} FROM calls WHERE archived = 1 AND started_at >= ?"
        args: list[Any] = [since]
        if until is not None:
            sql += " AND started_at < ?"
            args.append(until)
        return [_call(row) for row in self._db().execute(sql + " ORDER BY started_at", args)]

    def call(self, call_id: str) -> ArchivedCall | None:
        row = self._db().execute(f"SELECT {', '.join(_CALL_COLUMNS)} FROM calls WHERE call_id = ?",
                                 (call_id,)).fetchone()
        return _call(row) if row else None

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read-only query (analytics that SQL does faster than Python)."""
        return list(self._db().execute(sql, args))

    # --- labels

    def set_label(self, call_id: str, index: int, label: str | None, dialect: str | None = None, by: str = "",
                  source: str = "trainer") -> None:
        """Set (or with None, clear) one turn's label. The caller checks that the label is an intent of the flow."""
        if source not in LABEL_SOURCES:
            raise ValueError(f"label source must be one of {', '.join(LABEL_SOURCES)}, not {source!r}")
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "UPDATE turns SET label = ?, label_source = ?, label_dialect = ?, labeled_by = ?, labeled_at = ? "
                "WHERE call_id = ? AND idx = ?",
                (label, source if label else None, dialect if label else None, by or None if label else None,
                 time.time(), call_id, index))
            if cursor.rowcount == 0:
                raise NoSuchTurn(f"no archived turn {index} of call {call_id}")
            db.execute("UPDATE clusters SET revision = revision + 1 WHERE id = "
                       "(SELECT cluster FROM turns WHERE call_id = ? AND idx = ?)", (call_id, index))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def label_cluster(self, cluster_id: int, label: str | None, revision: int, dialect: str | None = None,
                      by: str = "") -> int:
        """Label every turn of the cluster (any age) in one transaction; returns how many.

        ``revision`` is the cluster's revision the trainer decided on: if another trainer labeled it meanwhile,
        :class:`ClusterChanged` and nothing is written."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT revision, label FROM clusters WHERE id = ?", (cluster_id,)).fetchone()
            if row is None:
                raise NoSuchCluster(f"no cluster {cluster_id}")
            if int(row[0]) != revision:
                raise ClusterChanged(f"cluster {cluster_id} changed since you saw it (revision {row[0]}, yours "
                                     f"{revision}; now labeled {row[1] or 'nothing'}): reload it and label again")
            cursor = db.execute(
                "UPDATE turns SET label = ?, label_source = ?, label_dialect = ?, labeled_by = ?, labeled_at = ? "
                "WHERE cluster = ?",
                (label, "trainer" if label else None, dialect if label else None, (by or None) if label else None,
                 time.time(), cluster_id))
            db.execute("UPDATE clusters SET revision = revision + 1, label = ? WHERE id = ?", (label, cluster_id))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(cursor.rowcount)

    def clusters(self, since: float, flow_id: str | None = None, offset: int = 0, limit: int = 50,
                 unlabeled_only: bool = False) -> tuple[int, list[ClusterSummary]]:
        """Clusters of failed turns in the window, biggest first: (how many clusters in all, this page)."""
        where: list[str] = ["t.failed = 1", "t.started_at >= ?"]
        args: list[Any] = [since]
        if flow_id is not None:
            where.append("t.flow_id = ?")
            args.append(flow_id)
        having = " HAVING SUM(t.label_source = 'trainer') < COUNT(*)" if unlabeled_only else ""
        base = f"FROM turns t WHERE {' AND '.join(where)} GROUP BY t.cluster{having}"
        db = self._db()
        total = int(db.execute(f"SELECT COUNT(*) FROM (SELECT t.cluster {base})", args).fetchone()[0])
        rows = db.execute(
            f"SELECT t.cluster, COUNT(*), SUM(t.label_source = 'trainer'), GROUP_CONCAT(DISTINCT t.node) {base} "
            f"ORDER BY COUNT(*) DESC, t.cluster LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        out = []
        for cluster_id, size, labeled, nodes in rows:
            info = db.execute("SELECT flow_id, language, heard, revision, label FROM clusters WHERE id = ?",
                              (cluster_id,)).fetchone()
            top = db.execute(
                f"SELECT label, label_source FROM turns WHERE cluster = ? AND failed = 1 AND started_at >= ? "
                f"AND label IS NOT NULL GROUP BY label, label_source "
                f"ORDER BY {_SOURCE_RANK.format(col='label_source')} DESC, COUNT(*) DESC, label LIMIT 1",
                (cluster_id, since)).fetchone()
            out.append(ClusterSummary(id=int(cluster_id), flow_id=info[0], language=info[1], heard=info[2],
                                      size=int(size), labeled=int(labeled or 0),
                                      suggested=top[0] if top else None, suggested_source=top[1] if top else None,
                                      nodes=tuple(sorted((nodes or "").split(","))), revision=int(info[3]),
                                      label=info[4]))
        return total, out

    def cluster(self, cluster_id: int, since: float = 0.0) -> ClusterSummary:
        row = self._db().execute("SELECT flow_id FROM clusters WHERE id = ?", (cluster_id,)).fetchone()
        if row is None:
            raise NoSuchCluster(f"no cluster {cluster_id}")
        db = self._db()
        size, labeled, nodes = db.execute(
            "SELECT COUNT(*), SUM(label_source = 'trainer'), GROUP_CONCAT(DISTINCT node) FROM turns "
            "WHERE cluster = ? AND started_at >= ?", (cluster_id, since)).fetchone()
        info = db.execute("SELECT flow_id, language, heard, revision, label FROM clusters WHERE id = ?",
                          (cluster_id,)).fetchone()
        top = db.execute(
            f"SELECT label, label_source FROM turns WHERE cluster = ? AND started_at >= ? AND label IS NOT NULL "
            f"GROUP BY label, label_source ORDER BY {_SOURCE_RANK.format(col='label_source')} DESC, COUNT(*) DESC, "
            f"label LIMIT 1", (cluster_id, since)).fetchone()
        return ClusterSummary(id=cluster_id, flow_id=info[0], language=info[1], heard=info[2], size=int(size),
                              labeled=int(labeled or 0), suggested=top[0] if top else None,
                              suggested_source=top[1] if top else None,
                              nodes=tuple(sorted((nodes or "").split(","))) if nodes else (),
                              revision=int(info[3]), label=info[4])

    def cluster_turns(self, cluster_id: int, since: float = 0.0, offset: int = 0, limit: int = 50
                      ) -> list[ArchivedTurn]:
        """One page of a cluster's turns, newest first (a 50,000-turn cluster is never loaded at once)."""
        rows = self._db().execute(
            f"SELECT {', '.join(_TURN_COLUMNS)} FROM turns WHERE cluster = ? AND started_at >= ? "
            f"ORDER BY started_at DESC, call_id, idx LIMIT ? OFFSET ?", (cluster_id, since, limit, offset))
        return [_turn(row) for row in rows]

    # --- retention

    def turn_audio_before(self, before: float) -> list[tuple[str, int, str]]:
        """(call id, index, audio path) of turns started before ``before`` that still have audio."""
        return [(str(c), int(i), str(a)) for c, i, a in self._db().execute(
            "SELECT call_id, idx, audio FROM turns WHERE started_at < ? AND audio IS NOT NULL", (before,))]

    def forget_audio(self, turns: Sequence[tuple[str, int]], at: float | None = None) -> int:
        """The turns' audio is gone: their rows (labels, transcripts, statistics) stay, without an audio path."""
        at = at if at is not None else time.time()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            count = 0
            for call_id, index in turns:
                count += db.execute("UPDATE turns SET audio = NULL, audio_purged_at = ? WHERE call_id = ? AND idx = ?",
                                    (at, call_id, index)).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return count

    def record_purge(self, who: str, before: float, files: int, size: int, detail: str) -> None:
        """The archive's own record of a purge (the audit log in Redis has it too when reachable)."""
        db = self._db()
        db.execute("INSERT INTO purges (at, who, before, files, bytes, detail) VALUES (?, ?, ?, ?, ?, ?)",
                   (time.time(), who, before, files, size, detail))

    def purges(self, count: int = 50) -> list[dict[str, Any]]:
        return [{"at": at, "who": who, "before": before, "files": files, "bytes": size, "detail": detail}
                for at, who, before, files, size, detail in self._db().execute(
                    "SELECT at, who, before, files, bytes, detail FROM purges ORDER BY at DESC LIMIT ?", (count,))]


def _redacted(turn: ArchivedTurn) -> ArchivedTurn:
    """The turn with personal data in what was heard replaced by tags (ivr.privacy.redaction)."""
    transcript = redact(turn.transcript)
    alternatives = tuple((redact(text), confidence) for text, confidence in turn.alternatives)
    if transcript == turn.transcript and alternatives == turn.alternatives:
        return turn
    return replace(turn, transcript=transcript, alternatives=alternatives)
