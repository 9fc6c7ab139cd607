"""The recordings service: a call's recording made findable when it ends, played with every check, held, purged by
policy and verified. The controller, the ``/qa`` API and ``ivr recordings`` all go through :class:`RecordingLibrary`
(blocking: SQLite and files; from asyncio in a thread, as :class:`CallRecorder` does for the controller).

Asterisk's MixMonitor writes ``recordings/calls/<day>/<call id>.raw`` (option ``D``: 16-bit PCM at 8 kHz, two
interleaved channels, the caller left and what the caller hears right). When the call hangs up and the file has
stopped growing, :meth:`RecordingLibrary.finalize` wraps it as a WAV (stdlib ``wave``), encrypts it when a key is
set, hashes it into the manifest and indexes it with the call's metadata and timeline. A finished call is never
held or failed by any of this: the controller runs it after the hang-up, in a thread, and logs failures.

What a player is refused, with a message naming the call and an access-log entry: no such recording (404), a
recording missing from the disk (404), truncated, grown or changed since it was recorded (409), purged by retention
— also while the request was on its way (410).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.privacy.redaction import redact
from ivr.recordings.crypto import CannotDecrypt, parse_key, seal, unseal
from ivr.recordings.disk import DiskWatch, room
from ivr.recordings.index import RecordingIndex, RecordingRow, Search
from ivr.recordings.manifest import Entry, Manifest, Problem, check, file_sha256
from ivr.recordings.timeline import Flag, build_timeline, parse_flags

if TYPE_CHECKING:
    from ivr.config import Settings
    from ivr.records.call import CallRecord

log = logging.getLogger(__name__)

__all__ = [
    "CallRecorder",
    "Damaged",
    "Missing",
    "NoRecording",
    "Playable",
    "PurgeReport",
    "Purged",
    "RecordingError",
    "RecordingLibrary",
    "VerifyReport",
]

CALLS_FOLDER = "calls"
DAY_S = 24 * 3600
#: MixMonitor's ``D`` output: signed 16-bit little-endian, 8 kHz (the ``.raw`` format is slin), 2 channels.
RAW_RATE, RAW_CHANNELS = 8000, 2


class RecordingError(Exception):
    """A recording cannot be played; ``status`` is the HTTP status, the message names the call and what is wrong."""

    status = 404
    action = "refused"


class NoRecording(RecordingError):
    status = 404


class Missing(RecordingError):
    status = 404


class Damaged(RecordingError):
    status = 409


class Purged(RecordingError):
    status = 410


@dataclass(frozen=True, slots=True)
class Playable:
    """A recording ready to send: its bytes (decrypted) and its index entry."""

    data: bytes
    row: RecordingRow
    media_type: str = "audio/wav"


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a purge did (or would do, dry)."""

    before: float
    """Calls started before this (epoch seconds) were due."""
    purged: tuple[str, ...]
    """Calls whose recording was removed."""
    held: tuple[str, ...]
    """Calls due but under legal hold: kept."""
    files: int
    """Files deleted (indexed and stray)."""
    bytes: int
    stray: int
    """Files of expired days that no index entry names (calls the controller never indexed)."""

    def detail(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.before))
        return (f"call recordings before {when}: {len(self.purged)} calls purged, {self.files} files "
                f"({self.bytes / 1e6:.1f} MB, {self.stray} not indexed), {len(self.held)} kept under legal hold")


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entries: int
    """Entries in the manifest."""
    problems: tuple[Problem, ...]
    head: Entry | None = None
    """The last entry (its hash is worth keeping elsewhere)."""

    @property
    def intact(self) -> bool:
        return not self.problems


def wav_from_raw(raw: bytes, rate: int = RAW_RATE, channels: int = RAW_CHANNELS) -> bytes:
    frame = 2 * channels
    raw = raw[: len(raw) - len(raw) % frame]  # a frame cut short by the hang-up
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(raw)
    return out.getvalue()


def wav_info(data: bytes) -> tuple[int, int, float]:
    """(channels, rate, seconds) of a WAV file's bytes."""
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getnchannels(), w.getframerate(), w.getnframes() / float(w.getframerate() or 1)


def redacted(call: dict[str, Any]) -> dict[str, Any]:
    """The call with its turns' transcripts through the redaction step (ivr.privacy.redaction) before the timeline
    keeps them; if that step fails, the transcripts are left out rather than kept as heard."""
    turns = []
    for turn in call.get("turns") or []:
        text = str(turn.get("transcript") or "")
        try:
            text = redact(text) if text else text
        except Exception as exc:
            log.warning("call %s: transcript left out of the timeline (redaction failed: %s)", call.get("call_id"),
                        type(exc).__name__)
            text = ""
        turns.append({**turn, "transcript": text})
    return {**call, "turns": turns}


def _day_names(at: float) -> list[str]:
    """The day folders a recording started at ``at`` may be in (Asterisk's local day, UTC, either side of midnight)."""
    names: list[str] = []
    for t in (at, at - DAY_S, at + DAY_S):
        for fmt in (time.localtime(t), time.gmtime(t)):
            name = time.strftime("%Y-%m-%d", fmt)
            if name not in names:
                names.append(name)
    return names


@dataclass
class RecordingLibrary:
    recordings_dir: Path
    index: RecordingIndex
    manifest: Manifest
    key: bytes | None = None
    """AES-256 key: recordings are encrypted at rest when set."""
    settle_s: float = 1.0
    """A recording is complete when it has not grown for this long (MixMonitor closes it after the hang-up)."""
    wait_s: float = 20.0
    """At most this long for that."""
    _root: Path = field(init=False)

    def __post_init__(self) -> None:
        self._root = self.recordings_dir.resolve()

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordingLibrary:
        """BadKey (a ValueError naming IVR_RECORDINGS_KEY) if the key is set but not a key."""
        secret = settings.recordings_key.get_secret_value() if settings.recordings_key else ""
        return cls(settings.recordings_dir, RecordingIndex(settings.recordings_index_file),
                   Manifest(settings.recordings_manifest_file), parse_key(secret) if secret else None)

    def _inside(self, rel: str) -> Path | None:
        path = (self._root / rel).resolve()
        return path if rel and path.is_relative_to(self._root / CALLS_FOLDER) else None

    def _rel(self, path: Path) -> str:
        return path.resolve().relative_to(self._root).as_posix()

    # --- when a call ends

    def find_file(self, call_id: str, started_at: float) -> Path | None:
        """The call's recording as MixMonitor left it (``.raw``), or an older/finished one (``.wav``, ``.wav.enc``)."""
        calls = self._root / CALLS_FOLDER
        for day in _day_names(started_at):
            for suffix in (".raw", ".wav", ".wav.enc"):
                path = calls / day / f"{call_id}{suffix}"
                if path.is_file():
                    return path
        return None

    def _settled(self, path: Path) -> bool:
        """Wait until the file stops growing; False if it vanished."""
        deadline = time.monotonic() + self.wait_s
        last: tuple[int, int] | None = None
        while time.monotonic() < deadline:
            try:
                st = path.stat()
            except FileNotFoundError:
                return False
            now = (st.st_size, st.st_mtime_ns)
            if now == last and time.time() - st.st_mtime >= self.settle_s:
                return True
            last = now
            time.sleep(min(self.settle_s / 2, 0.5))
        return path.exists()

    def finalize(self, call: dict[str, Any]) -> RecordingRow:
        """Make the call's recording findable and tamper-evident (``call`` is ``CallRecord.to_dict()``)."""
        call_id = str(call["call_id"])
        started_at = float(call.get("started_at") or time.time())
        path = self.find_file(call_id, started_at)
        if path is None:  # MixMonitor creates the file at once; give a slow disk a moment
            time.sleep(min(self.settle_s, 1.0))
            path = self.find_file(call_id, started_at)
        if path is None or not self._settled(path):
            left = room(self._root)
            if left is not None and left.full:  # the usual cause, said plainly: MixMonitor could not write
                problem = f"not recorded: the recordings disk was full ({left.describe()})"
                log.error("call %s was NOT recorded: the recordings disk is full (%s)", call_id, left.describe())
            else:
                problem = "no recording was found when the call ended (MixMonitor did not record it)"
                log.warning("call %s: no recording found in %s", call_id, self._root / CALLS_FOLDER)
            row = self._row(call, "", b"", "", 1, 0, 0.0, "missing", problem)
            self.index.upsert(row)
            return row
        known = self.index.get(call_id)
        if known is not None and known.state == "ok" and known.path == self._rel(path):
            return self._reindexed(known, call)
        data = path.read_bytes()
        if path.suffix == ".raw":
            data = wav_from_raw(data)
        elif path.name.endswith(".wav.enc") and self.key:
            data = unseal(data, self.key, call_id)
        channels, rate, seconds = wav_info(data)
        stored = seal(data, self.key, call_id) if self.key else data
        target = path.parent / (f"{call_id}.wav.enc" if self.key else f"{call_id}.wav")
        if target != path or stored is not data:
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(stored)
            os.replace(tmp, target)
            if path != target:
                path.unlink(missing_ok=True)
        sha = hashlib.sha256(stored).hexdigest()
        rel = self._rel(target)
        self.manifest.append("recorded", call_id, rel, sha, len(stored), on_appended=self.index.set_head)
        row = self._row(call, rel, stored, sha, channels, rate, seconds, "ok", None)
        self.index.upsert(row)
        return row

    def _row(self, call: dict[str, Any], rel: str, stored: bytes, sha: str, channels: int, rate: int,
             seconds: float, state: str, problem: str | None) -> RecordingRow:
        timeline = build_timeline(redacted(call), seconds).to_dict()
        timeline.pop("flags", None)
        return RecordingRow(
            call_id=str(call["call_id"]), path=rel, started_at=float(call.get("started_at") or 0.0),
            ended_at=call.get("ended_at"), duration_s=round(seconds, 2), customer=call.get("customer"),
            agent=call.get("agent"), queue=call.get("queue"), outcome=str(call.get("outcome") or ""),
            intent=call.get("intent"), channels=channels, rate=rate, bytes=len(stored), sha256=sha,
            encrypted=bool(self.key) and bool(stored), state=state, problem=problem, purged_at=None, held=False,
            hold_reason=None, held_by=None, held_at=None, timeline=timeline, flags=[])

    def _reindexed(self, known: RecordingRow, call: dict[str, Any]) -> RecordingRow:
        """The same recording again (the call record completed later, e.g. a callback): metadata only."""
        timeline = build_timeline(redacted(call), known.duration_s).to_dict()
        timeline.pop("flags", None)
        row = RecordingRow(**{**{f: getattr(known, f) for f in known.__dataclass_fields__},
                              "ended_at": call.get("ended_at"), "agent": call.get("agent"),
                              "queue": call.get("queue"), "outcome": str(call.get("outcome") or ""),
                              "intent": call.get("intent"), "timeline": timeline})
        self.index.upsert(row)
        return row

    # --- finding and playing

    def search(self, q: Search) -> tuple[int, list[RecordingRow]]:
        return self.index.search(q)

    def entry(self, call_id: str) -> RecordingRow:
        row = self.index.get(call_id)
        if row is None:
            raise NoRecording(f"no recording of call {call_id} in the index")
        return row

    def timeline(self, row: RecordingRow) -> dict[str, Any]:
        flags = [Flag(float(f["at_s"]), str(f["kind"]), str(f["text"])) for f in row.flags]
        return {**row.timeline, "flags": [{"at_s": f.at_s, "kind": f.kind, "text": f.text}
                                          for f in sorted(flags, key=lambda f: f.at_s)]}

    def play(self, call_id: str, who: str, role: str, action: str = "play", log_access: bool = True) -> Playable:
        """The recording's bytes after every check; the access (or the refusal, with its reason) is logged."""
        try:
            playable = self._read(call_id)
        except RecordingError as exc:
            self.index.log_access(who, role, call_id, "refused", f"{action}: {exc}")
            raise
        if log_access:
            self.index.log_access(who, role, call_id, action,
                                  f"{playable.row.path} ({playable.row.duration_s:.0f} s)")
        return playable

    def _read(self, call_id: str) -> Playable:
        row = self.entry(call_id)
        if row.state == "purged":
            raise Purged(self._purged_message(row))
        if row.state == "missing":
            raise Missing(f"call {call_id} has no recording: {row.problem or 'none was found'}")
        path = self._inside(row.path)
        if path is None:
            raise Missing(f"the recording of call {call_id} is not inside the recordings folder")
        try:
            data = path.read_bytes()  # all at once: a purge that unlinks it now cannot cut it short
        except FileNotFoundError:
            now = self.index.get(call_id)
            if now is not None and now.state == "purged":  # the purge ran while this request was on its way
                raise Purged(self._purged_message(now)) from None
            raise Missing(f"the recording of call {call_id} is missing from the disk ({row.path}); "
                          f"`ivr recordings verify` lists every broken recording") from None
        if len(data) < row.bytes:
            raise Damaged(f"the recording of call {call_id} is truncated: {len(data)} of {row.bytes} bytes "
                          f"({row.path})")
        if len(data) > row.bytes or hashlib.sha256(data).hexdigest() != row.sha256:
            raise Damaged(f"the recording of call {call_id} was changed since it was recorded (its SHA-256 "
                          f"differs; {row.path})")
        if row.encrypted:
            if self.key is None:
                raise Damaged(f"the recording of call {call_id} is encrypted and IVR_RECORDINGS_KEY is not set")
            try:
                data = unseal(data, self.key, call_id)
            except CannotDecrypt as exc:
                raise Damaged(str(exc)) from None
        return Playable(data, row)

    @staticmethod
    def _purged_message(row: RecordingRow) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.purged_at or 0))
        return f"the recording of call {row.call_id} was purged by retention on {when}"

    # --- flags, holds

    def set_flags(self, call_id: str, flags: list[dict[str, Any]]) -> RecordingRow:
        """Replace the call's flags ({at_s, kind, text}); ValueError names a bad field."""
        parsed = parse_flags(flags)
        if not self.index.set_flags(call_id, [{"at_s": f.at_s, "kind": f.kind, "text": f.text} for f in parsed]):
            raise NoRecording(f"no recording of call {call_id} in the index")
        return self.entry(call_id)

    def hold(self, call_id: str, who: str, role: str, reason: str) -> RecordingRow:
        """Legal hold: no purge removes the recording until released. ``reason`` is required (ValueError)."""
        reason = reason.strip()
        if not reason:
            raise ValueError("reason: say why the call is held (a case number, a complaint)")
        row = self.entry(call_id)
        if row.state == "purged":
            raise Purged(self._purged_message(row))
        self.index.set_hold(call_id, True, who, reason)
        self.index.log_access(who, role, call_id, "hold", reason)
        return self.entry(call_id)

    def release(self, call_id: str, who: str, role: str, reason: str) -> RecordingRow:
        reason = reason.strip()
        if not reason:
            raise ValueError("reason: say why the hold ends")
        self.entry(call_id)
        self.index.set_hold(call_id, False, who, reason)
        self.index.log_access(who, role, call_id, "release", reason)
        return self.entry(call_id)

    # --- retention

    def purge(self, days: int, who: str, now: float | None = None, dry_run: bool = False) -> PurgeReport:
        """Remove call recordings older than ``days`` days, except those under legal hold; each removal is in the
        manifest (a ``purged`` entry) and the access log. The index entry stays (state "purged")."""
        if days < 1:
            raise ValueError(f"days: at least 1, not {days}")
        now = time.time() if now is None else now
        before = now - days * DAY_S
        purged: list[str] = []
        files = size = stray = 0
        for row in self.index.expired(before):
            path = self._inside(row.path)
            on_disk = path.stat().st_size if path is not None and path.is_file() else 0
            if dry_run:
                purged.append(row.call_id)
                files, size = files + (1 if on_disk else 0), size + on_disk
                continue
            # Marked first: a player that then finds the file gone is told it was purged, not that it is missing.
            if not self.index.mark_purged(row.call_id, now):
                continue  # held (or purged) meanwhile
            if row.path:
                self.manifest.append("purged", row.call_id, row.path, on_appended=self.index.set_head)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    files, size = files + 1, size + on_disk
            self.index.log_access(who, "retention", row.call_id, "purge", f"{row.path}, older than {days} days")
            purged.append(row.call_id)
        held = tuple(sorted(r.call_id for r in self.index.search(Search(until=before, held=True, limit=100_000))[1]))
        # Whole expired days: files the index never heard of (e.g. the controller was down when the call ended).
        calls = self._root / CALLS_FOLDER
        known = self.index.indexed_paths()
        held_ids = self.index.held_ids()
        for folder in sorted(calls.iterdir()) if calls.is_dir() else []:
            try:
                day_end = time.mktime(time.strptime(folder.name, "%Y-%m-%d")) + DAY_S
            except ValueError:
                continue
            if not folder.is_dir() or day_end > before:
                continue
            for path in folder.iterdir():
                stem = path.name.split(".", 1)[0]
                if not path.is_file() or self._rel(path) in known or stem in held_ids:
                    continue
                stray, files, size = stray + 1, files + 1, size + path.stat().st_size
                if not dry_run:
                    path.unlink(missing_ok=True)
            if not dry_run:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        return PurgeReport(before=before, purged=tuple(purged), held=held, files=files, bytes=size, stray=stray)

    # --- integrity

    def verify(self) -> VerifyReport:
        """Every broken manifest entry and recording (see ivr.recordings.manifest)."""

        def stat(rel: str) -> tuple[str, int] | None:
            path = self._inside(rel)
            if path is None or not path.is_file():
                return None
            return file_sha256(path)

        lines = self.manifest.lines()
        problems = check(lines, self.index.head(), stat)
        entries = self.manifest.entries()
        return VerifyReport(entries=len(entries), problems=tuple(problems), head=entries[-1] if entries else None)


class CallRecorder:
    """The controller's side: ``finish(call)`` after the hang-up, in a thread, two at a time; never raises."""

    def __init__(self, library: RecordingLibrary | None, disk: DiskWatch | None = None) -> None:
        self.library = library
        self.disk = disk
        """The room left on the recordings disk, watched while the controller runs (``start``)."""
        self._slots = asyncio.Semaphore(2)

    @classmethod
    def from_settings(cls, settings: Settings) -> CallRecorder:
        disk = DiskWatch(settings.recordings_dir)
        try:
            return cls(RecordingLibrary.from_settings(settings), disk)
        except ValueError as exc:  # a bad key: recordings stay as Asterisk wrote them, and the log says why
            log.error("call recordings are NOT indexed or hashed: %s", exc)
            return cls(None, disk)

    def start(self) -> None:
        """Watch the recordings disk (a full disk is logged as an ERROR when it fills, not found at the next audit)."""
        if self.disk is not None:
            self.disk.start()

    async def stop(self) -> None:
        if self.disk is not None:
            await self.disk.stop()

    async def finish(self, call: CallRecord) -> RecordingRow | None:
        if self.library is None:
            return None
        library, data = self.library, call.to_dict()
        try:
            async with self._slots:
                return await asyncio.to_thread(library.finalize, data)
        except Exception as exc:
            log.error("call %s: recording not indexed (%s); `ivr recordings verify` will not know it",
                      call.call_id, exc)
            return None
