"""The quality checks' service: find new recordings, check each call (transcribe the agent, match the checklist,
score, flag) and answer /qa and ``ivr qa`` about progress and the review list. Blocking (SQLite, files, Vosk).

Flags go to the call's entry in the recordings index (``RecordingLibrary.set_flags``: the /qa timeline shows them
and the search's "flagged" filter finds them); a reviewer's own flags (other kinds) are kept. Scores, findings and
the redacted transcript stay in the quality queue's table (``jobs.QualityJobs``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.recordings.index import Search
from ivr.recordings.library import NoRecording, RecordingError, RecordingLibrary
from ivr.recordings.quality.checklist import FLAG_KIND, Checklist, validate_checklist
from ivr.recordings.quality.checks import check_call
from ivr.recordings.quality.jobs import QualityJobs
from ivr.recordings.quality.transcribe import Transcriber, agent_audio, agent_spans, transcribe_agent

if TYPE_CHECKING:
    from ivr.config import Settings

log = logging.getLogger(__name__)

__all__ = ["ChecklistFile", "QualityService"]

#: Who the access log names when the checks read a recording.
READER = "quality-checks"
#: A call started this long before the last scan may only now be indexed (a long call, a late finalize).
LOOKBACK_S = 6 * 3600.0
#: The first scan of a new installation checks the calls of the last day, not years of history.
FIRST_LOOKBACK_S = 24 * 3600.0
QA_FLAG_KINDS = frozenset(FLAG_KIND.values())


@dataclass
class ChecklistFile:
    """The checklist file, read again when it changes; a broken one is reported, never half-used."""

    path: Path
    queues: frozenset[str] | None = None
    _seen: tuple[int, int] | None = field(default=None, init=False)
    _checklist: Checklist | None = field(default=None, init=False)
    _error: str | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def get(self) -> tuple[Checklist | None, str | None]:
        """(the checklist, None) or (None, what is wrong with it)."""
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._seen, self._checklist = None, None
                self._error = f"{self.path}: no checklist (dialplans/qa-checklist.yaml is the example)"
                return None, self._error
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._seen:
                report = validate_checklist(self.path.read_text(encoding="utf-8"), str(self.path), self.queues)
                self._seen, self._checklist = stamp, report.checklist
                self._error = None if report.ok else "; ".join(p.format() for p in report.errors[:3])
                if self._error:
                    log.error("quality checks paused: the checklist has errors: %s", self._error)
            return self._checklist, self._error


@dataclass
class QualityService:
    library: RecordingLibrary
    jobs: QualityJobs
    checklist: ChecklistFile

    @classmethod
    def from_settings(cls, settings: Settings, library: RecordingLibrary | None = None) -> QualityService:
        from ivr.voice.validation.context import asterisk_queues

        try:
            queues: frozenset[str] | None = asterisk_queues()
        except OSError:
            queues = None
        return cls(library or RecordingLibrary.from_settings(settings), QualityJobs(settings.qa_db_file),
                   ChecklistFile(settings.qa_checklist_file, queues))

    # --- finding the calls to check

    def discover(self, now: float | None = None) -> int:
        """Queue every recording indexed since the last scan; how many were new."""
        now = time.time() if now is None else now
        seen = self.jobs.meta("scanned_until")
        since = float(seen) - LOOKBACK_S if seen else now - FIRST_LOOKBACK_S
        added = offset = 0
        while True:
            total, rows = self.library.search(Search(since=since, offset=offset, limit=200))
            for row in rows:
                if row.state == "ok":
                    added += self.jobs.enqueue(row.call_id, row.started_at, row.queue, row.agent, at=now)
            offset += len(rows)
            if not rows or offset >= total:
                break
        self.jobs.set_meta("scanned_until", repr(now))
        return added

    # --- checking one call

    def run_one(self, transcriber: Transcriber) -> str | None:
        """Claim the next call and check it; its id, or None when the queue is empty or the checklist broken."""
        checklist, _ = self.checklist.get()
        if checklist is None:
            return None
        job = self.jobs.claim()
        if job is None:
            return None
        try:
            self.check(job.call_id, checklist, transcriber)
        except Exception as exc:  # one call's failure never stops the others
            state = self.jobs.fail(job.call_id, f"{type(exc).__name__}: {exc}")
            log.warning("call %s: quality check failed (%s), %s", job.call_id, exc, state)
        return job.call_id

    def check(self, call_id: str, checklist: Checklist, transcriber: Transcriber) -> None:
        started = time.monotonic()
        try:
            row = self.library.entry(call_id)
        except NoRecording as exc:
            self.jobs.skip(call_id, str(exc))
            return
        if row.state != "ok":
            self.jobs.skip(call_id, f"recording {row.state}: {row.problem or ''}".strip(": "))
            return
        spans = agent_spans(row.timeline, row.duration_s, answered=bool(row.agent))
        if not spans:
            self.jobs.skip(call_id, "no agent answered: nothing to check")
            return
        try:
            playable = self.library.play(call_id, READER, "system", "transcribe")
        except RecordingError as exc:  # missing, damaged, purged: trying again will not help
            self.jobs.fail(call_id, str(exc), final=True)
            return
        audio = agent_audio(playable.data, spans)
        cpu = time.thread_time()
        words = transcribe_agent(audio, transcriber)
        cpu_s = time.thread_time() - cpu
        result = check_call(checklist.items_for(row.queue), words, spans[0][0], checklist.pass_score)
        kept = [f for f in row.flags if f.get("kind") not in QA_FLAG_KINDS]
        self.library.set_flags(call_id, kept + result.flags())
        self.jobs.finish(
            call_id, score=result.score, flagged=result.flagged, audio_s=round(audio.audio_s, 2),
            cpu_s=round(cpu_s, 3), wall_s=round(time.monotonic() - started, 3), source=audio.source,
            result={"score": result.score, "flagged": result.flagged, "source": audio.source,
                    "findings": [{"item": f.item, "kind": f.kind, "at_s": round(f.at_s, 2), "text": f.text}
                                 for f in result.findings],
                    "passed": list(result.passed), "words": len(words), "transcript": _redacted(words)})
        log.info("call %s: quality score %d%s (%.0f s of agent talk, %s)", call_id, result.score,
                 ", flagged" if result.flagged else "", audio.audio_s, audio.source)

    # --- the worker

    def work(self, stop: threading.Event, transcriber: Transcriber, workers: int = 1, poll_s: float = 2.0) -> None:
        """Check calls until ``stop``: ``workers`` threads sharing one model, this thread finding new calls."""
        resumed = self.jobs.resume()
        if resumed:
            log.info("quality checks: %d calls a stopped worker had started are queued again", resumed)

        def loop() -> None:
            while not stop.is_set():
                if self.run_one(transcriber) is None:
                    stop.wait(poll_s)

        threads = [threading.Thread(target=loop, name=f"qa-worker-{i}", daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        while not stop.is_set():
            try:
                self.discover()
            except Exception as exc:  # the index busy or being rebuilt: the next scan catches up
                log.warning("quality checks: scanning the recordings index failed: %s", exc)
            stop.wait(poll_s)
        for thread in threads:
            thread.join(timeout=30)

    # --- what /qa asks

    def progress(self) -> dict[str, Any]:
        _, error = self.checklist.get()
        return {**self.jobs.progress().to_dict(), "checklist": str(self.checklist.path), "checklist_error": error}


def _redacted(words: list[Any]) -> str | None:
    """What the agent said, through the redaction step; None (not kept) if that step fails."""
    from ivr.privacy.redaction import redact

    text = " ".join(w.word for w in words)
    try:
        return redact(text) if text else ""
    except Exception as exc:
        log.warning("transcript not kept (redaction failed: %s)", type(exc).__name__)
        return None
