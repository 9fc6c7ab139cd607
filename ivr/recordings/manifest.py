"""The manifest: a tamper-evident log of the recordings, one JSON line per entry, each entry chained to the one
before (its ``hash`` covers the previous entry's ``hash``).

An entry says a recording was made (``recorded``: its path, size and SHA-256) or removed by retention (``purged``).
:func:`check` finds, naming each broken entry:

- an entry whose content was edited (its hash no longer matches what it says),
- an entry removed or moved (the next entry's ``prev`` or ``seq`` does not follow),
- entries cut off the end (the head kept in the index, :class:`Head`, is further than the file),
- a recording changed on disk (its SHA-256 differs), truncated or grown (its size differs), or missing.

The chain proves the log was not edited in place; whoever could rewrite the whole file and the index could forge a
new chain, so the head (``ivr recordings verify`` prints it, every purge puts it in the audit log) is worth copying
somewhere else. Pure functions here, except :class:`Manifest` (the file, appended under an exclusive ``flock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["GENESIS", "Entry", "Head", "Manifest", "Problem", "check", "entry_hash", "file_sha256", "next_entry"]

GENESIS = "0" * 64
"""The ``prev`` of the first entry."""
KINDS = ("recorded", "purged")


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the manifest."""

    seq: int
    """1, 2, ... in the order entries were appended."""
    at: float
    """When it was appended (epoch seconds)."""
    kind: str
    """"recorded" (a recording was made and hashed) or "purged" (retention removed it)."""
    call_id: str
    """The call the recording belongs to."""
    path: str
    """The recording, relative to the recordings folder."""
    sha256: str
    """SHA-256 of the file's bytes as stored (encrypted, when encrypted); "" for a purge."""
    bytes: int
    """Its size as stored; 0 for a purge."""
    prev: str
    """``hash`` of the entry before (:data:`GENESIS` for the first)."""
    hash: str
    """SHA-256 over every other field (``prev`` included): :func:`entry_hash`."""

    def line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def name(self) -> str:
        """How a message names the entry: "entry 12 (call X, calls/2026-01-02/X.wav)"."""
        return f"entry {self.seq} (call {self.call_id}, {self.path})"


@dataclass(frozen=True, slots=True)
class Head:
    """The last entry appended, as the index remembers it (so entries cut off the end are noticed)."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken entry or recording, as ``ivr recordings verify`` names it."""

    seq: int | None
    """The manifest entry (None: the manifest as a whole)."""
    call_id: str
    path: str
    what: str
    """"changed", "missing", "truncated", "grown", "entry altered", "chain broken", "unreadable", "cut off"."""
    detail: str
    """A sentence for a person."""

    def message(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "manifest"
        who = f" (call {self.call_id}, {self.path})" if self.call_id or self.path else ""
        return f"{where}{who}: {self.what}: {self.detail}"


def entry_hash(seq: int, at: float, kind: str, call_id: str, path: str, sha256: str, size: int, prev: str) -> str:
    """The hash an entry must carry: SHA-256 of its canonical JSON without ``hash``."""
    body = {"seq": seq, "at": at, "kind": kind, "call_id": call_id, "path": path, "sha256": sha256, "bytes": size,
            "prev": prev}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


def next_entry(last: Entry | None, kind: str, call_id: str, path: str, sha256: str = "", size: int = 0,
               at: float | None = None) -> Entry:
    """The entry that follows ``last`` (pure)."""
    if kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}, not {kind!r}")
    seq = last.seq + 1 if last else 1
    prev = last.hash if last else GENESIS
    at = round(time.time() if at is None else at, 3)
    return Entry(seq=seq, at=at, kind=kind, call_id=call_id, path=path, sha256=sha256, bytes=size, prev=prev,
                 hash=entry_hash(seq, at, kind, call_id, path, sha256, size, prev))


def parse_entry(line: str) -> Entry:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return Entry(seq=int(data["seq"]), at=float(data["at"]), kind=str(data["kind"]), call_id=str(data["call_id"]),
                 path=str(data["path"]), sha256=str(data["sha256"]), bytes=int(data["bytes"]),
                 prev=str(data["prev"]), hash=str(data["hash"]))


def file_sha256(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def check(lines: list[str], head: Head | None, stat: Callable[[str], tuple[str, int] | None]) -> list[Problem]:
    """Every problem of the manifest ``lines`` and the recordings they name (pure but for ``stat``).

    ``stat(path)`` is (sha256, size) of the recording now, or None when it is missing; ``head`` the last entry the
    index saw appended (None: unknown)."""
    problems: list[Problem] = []
    last: Entry | None = None
    current: dict[str, Entry] = {}  # path -> its latest entry
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = parse_entry(line)
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(Problem(None, "", "", "unreadable", f"line {number} is not a manifest entry ({exc})"))
            continue
        expected = entry_hash(entry.seq, entry.at, entry.kind, entry.call_id, entry.path, entry.sha256, entry.bytes,
                              entry.prev)
        if expected != entry.hash:
            problems.append(Problem(entry.seq, entry.call_id, entry.path, "entry altered",
                                    "its content does not match its hash: the entry was edited"))
        want_prev, want_seq = (last.hash, last.seq + 1) if last else (GENESIS, 1)
        if entry.prev != want_prev or entry.seq != want_seq:
            after = f"entry {last.seq}" if last else "the start"
            problems.append(Problem(entry.seq, entry.call_id, entry.path, "chain broken",
                                    f"it does not follow {after} (an entry before it was removed, reordered or "
                                    f"inserted)"))
        current[entry.path] = entry
        last = entry
    if head is not None and (last is None or last.seq < head.seq):
        have = last.seq if last else 0
        problems.append(Problem(None, "", "", "cut off",
                                f"the manifest ends at entry {have} but entry {head.seq} was appended: entries were "
                                f"removed from its end"))
    elif head is not None and last is not None and last.seq == head.seq and last.hash != head.hash:
        problems.append(Problem(last.seq, last.call_id, last.path, "chain broken",
                                "the last entry is not the one the index saw appended"))
    for entry in current.values():
        if entry.kind != "recorded":
            continue
        now = stat(entry.path)
        if now is None:
            problems.append(Problem(entry.seq, entry.call_id, entry.path, "missing",
                                    "the recording is not on the disk (and no purge is recorded)"))
            continue
        sha, size = now
        if size < entry.bytes:
            problems.append(Problem(entry.seq, entry.call_id, entry.path, "truncated",
                                    f"{size} bytes on the disk, {entry.bytes} recorded"))
        elif size > entry.bytes:
            problems.append(Problem(entry.seq, entry.call_id, entry.path, "grown",
                                    f"{size} bytes on the disk, {entry.bytes} recorded"))
        elif sha != entry.sha256:
            problems.append(Problem(entry.seq, entry.call_id, entry.path, "changed",
                                    f"SHA-256 {sha[:12]}… on the disk, {entry.sha256[:12]}… recorded: its bytes "
                                    f"were changed"))
    return problems


class Manifest:
    """The manifest file: appended under an exclusive lock (the controller and ``ivr recordings purge`` may both
    write), each line fsync'ed before the append returns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @staticmethod
    def _last(f: Any) -> Entry | None:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        chunk = 4096
        while True:
            start = max(0, end - chunk)
            f.seek(start)
            tail = f.read(end - start)
            lines = [line for line in tail.split(b"\n") if line.strip()]
            if len(lines) > 1 or start == 0:
                return parse_entry(lines[-1].decode("utf-8")) if lines else None
            chunk *= 2

    def append(self, kind: str, call_id: str, path: str, sha256: str = "", size: int = 0,
               on_appended: Callable[[Entry], None] | None = None) -> Entry:
        """Append an entry chained to the last one; ``on_appended`` runs while the lock is held (the index
        records the head there, so heads and lines cannot cross)."""
        with self._locked() as f:
            entry = next_entry(self._last(f), kind, call_id, path, sha256, size)
            f.seek(0, os.SEEK_END)
            f.write((entry.line() + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
            if on_appended is not None:
                on_appended(entry)
        return entry

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return self.path.read_text(encoding="utf-8").splitlines()

    def entries(self) -> list[Entry]:
        """The parseable entries (for reading, not checking: :func:`check` does that)."""
        out = []
        for line in self.lines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                if line.strip():
                    out.append(parse_entry(line))
        return out
