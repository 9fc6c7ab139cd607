"""The trainer loop's services for the pages: replay jobs in the background, and a cluster's suggestion.

- ``ReplayJobs``: one replay at a time per flow, run in a worker thread that drives the process pool
  (``replay.replay``); its progress is read by polling ``current``. The result is kept for the publish of its
  text (``gate.save_result``). Jobs live in this process (a second web process has its own).
- ``cluster_suggestion``: a labeled cluster of failed turns -> ``suggest.Suggestion``, with what the model hears
  in a sample of the cluster's recordings without a grammar (``replay.hear_freely``).

Nothing here changes the live flow: a suggestion is a candidate text, a replay only reads.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.records.archive import Archive
from ivr.voice.flow import FlowError, parse_flow
from ivr.voice.training.gate import save_result, text_sha256
from ivr.voice.training.replay import ReplayResult, archived_turns, hear_freely, replay
from ivr.voice.training.suggest import HeardTurn, Suggestion, SuggestionError, suggest
from ivr.voice.training.vocabulary import Vocabulary

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)

#: Turns of a cluster read for the n-best evidence (a cluster of 50,000 is sampled, never read whole).
SUGGEST_TURNS = 200
#: Of them, recordings heard again without a grammar (slow: about 0.4 s per second of audio per core).
SUGGEST_FREE_HEARING = 8


class ReplayRunning(Exception):
    """A replay of this flow is already running (HTTP 409)."""


@dataclass
class ReplayJob:
    """One background replay and how far it got."""

    flow_id: str
    sha256: str
    """Of the candidate's text."""
    by: str
    since: float
    started_at: float = field(default_factory=time.time)
    state: str = "running"
    """"running", "done" or "failed"."""
    done: int = 0
    total: int = 0
    finished_at: float | None = None
    result: ReplayResult | None = None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {"flow_id": self.flow_id, "sha256": self.sha256, "by": self.by, "since": self.since,
                "started_at": self.started_at, "state": self.state, "done": self.done, "total": self.total,
                "finished_at": self.finished_at, "error": self.error,
                "result": self.result.to_dict() if self.result else None}


class ReplayJobs:
    """The replays of this process, one at a time per flow."""

    def __init__(self, archive_file: Path, recordings_dir: Path, redis: aioredis.Redis | None,
                 workers: int | None = None) -> None:
        self.archive_file, self.recordings_dir, self.redis, self.workers = archive_file, recordings_dir, redis, workers
        self._jobs: dict[str, ReplayJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def current(self, flow_id: str) -> ReplayJob | None:
        """The running or last replay of ``flow_id``."""
        return self._jobs.get(flow_id)

    def start(self, flow_id: str, text: str, since: float, by: str) -> ReplayJob:
        """Start replaying candidate ``text`` against the turns since ``since``; raises FlowError, ReplayRunning."""
        flow = parse_flow(text, f"{flow_id} (candidate)")
        if flow.id != flow_id:
            raise FlowError(f"the candidate's id is {flow.id!r}, not {flow_id!r}")
        running = self._jobs.get(flow_id)
        if running is not None and running.state == "running":
            raise ReplayRunning(f"a replay of {flow_id!r} started by {running.by} is running ({running.done} of "
                                f"{running.total} turns): wait for it")
        job = self._jobs[flow_id] = ReplayJob(flow_id, text_sha256(text), by, since)
        self._tasks[flow_id] = asyncio.create_task(self._run(job, text), name=f"replay-{flow_id}")
        return job

    async def wait(self, flow_id: str) -> ReplayJob | None:
        """The job once it has ended (tests, the CLI)."""
        task = self._tasks.get(flow_id)
        if task is not None:
            await asyncio.shield(task)
        return self._jobs.get(flow_id)

    async def _run(self, job: ReplayJob, text: str) -> None:
        def progress(done: int, total: int) -> None:  # from the worker thread: plain assignments
            job.done, job.total = done, total

        try:
            turns = await asyncio.to_thread(archived_turns, self.archive_file, self.recordings_dir, job.flow_id,
                                            job.since)
            job.total = len(turns)
            result = await asyncio.to_thread(functools.partial(replay, text, turns, workers=self.workers,
                                                               progress=progress, since=job.since))
            if self.redis is not None:
                await save_result(self.redis, result)
            job.result, job.state = result, "done"
        except Exception as exc:  # the job says so; the page shows it
            log.exception("replay of %s failed", job.flow_id)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = time.time()


@functools.cache
def model_vocabulary(language: str) -> Vocabulary | None:
    """The vocabulary of the language's model pack on this machine (None when its folder has no word list)."""
    from asr import default_registry

    words = default_registry().get(language).vocabulary
    return Vocabulary(words, language) if words is not None else None


def cluster_suggestion(archive: Archive, recordings_dir: Path, flow_text: str, cluster_id: int, since: float, *,
                       label: str | None = None, dialect: str | None = None, phrase: str | None = None,
                       listen: bool = True, vocabulary: Vocabulary | None = None) -> Suggestion:
    """The suggestion for a cluster (blocking: run it in a thread). Raises SuggestionError, NoSuchCluster."""
    summary = archive.cluster(cluster_id, since)
    turns = archive.cluster_turns(cluster_id, since, limit=SUGGEST_TURNS)
    label = label or summary.label or summary.suggested
    if not label:
        raise SuggestionError("label", f"cluster {cluster_id} has no label yet: label it (or name the intent) first")
    if not turns:
        raise SuggestionError("turns", f"cluster {cluster_id} has no turns in the window")
    node = Counter(t.node for t in turns).most_common(1)[0][0]
    dialect = dialect or next((t.label_dialect for t in turns if t.label_dialect), None)
    heard: list[str | None] = [None] * len(turns)
    if listen and phrase is None:
        sample = [t for t in turns if t.audio][:SUGGEST_FREE_HEARING]
        freely = hear_freely([recordings_dir / t.audio for t in sample if t.audio], summary.language, workers=2)
        where = {id(t): i for i, t in enumerate(turns)}
        for turn, text in zip(sample, freely, strict=True):
            heard[where[id(turn)]] = text
    evidence = [HeardTurn(t.transcript, t.alternatives, h) for t, h in zip(turns, heard, strict=True)]
    if vocabulary is None:
        vocabulary = model_vocabulary(summary.language)
    return suggest(flow_text, intent=label, node=node, language=summary.language, turns=evidence,
                   vocabulary=vocabulary, dialect=dialect, phrase=phrase, source_name=summary.flow_id)
