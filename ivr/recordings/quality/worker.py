"""The quality worker process: ``ivr qa worker`` (niced; ``qa_workers`` threads over one Vosk model), and
:class:`WorkerProcess`, which the controller uses to keep one running beside it.

A separate process, not threads in the controller: free dictation is ~0.5 CPU-s per audio second, and the
controller's calls must keep their cores (the worker runs at ``qa_nice``, 19 by default: the kernel gives calls the
CPU first); a crash inside Vosk ends the worker, never a call. The queue is in SQLite, so a worker that stops
resumes where it was (``QualityJobs.resume``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from ivr.config import Settings

log = logging.getLogger(__name__)

__all__ = ["WorkerProcess", "run_worker"]


def run_worker(settings: Settings, parent: int | None = None) -> None:
    """Check calls until SIGTERM/SIGINT (or until ``parent`` is gone)."""
    from ivr.recordings.quality.service import QualityService
    from ivr.recordings.quality.transcribe import VoskTranscriber

    if settings.qa_nice:
        os.nice(settings.qa_nice)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if parent:
        def watch() -> None:  # the controller died without stopping us: so do we
            while not stop.wait(2.0):
                if os.getppid() != parent:
                    log.warning("quality worker: the controller (pid %d) is gone; stopping", parent)
                    stop.set()
        threading.Thread(target=watch, name="qa-parent", daemon=True).start()
    service = QualityService.from_settings(settings)
    transcriber = VoskTranscriber(settings.default_language)
    log.info("quality worker ready (pid %d, %d worker thread(s), nice %d, checklist %s)", os.getpid(),
             settings.qa_workers, os.nice(0), settings.qa_checklist_file)
    service.work(stop, transcriber, workers=max(1, settings.qa_workers))
    log.info("quality worker stopped")


def _append(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")


class WorkerProcess:
    """Keeps ``ivr qa worker`` running beside the controller: started with it, restarted if it dies (after a
    pause that grows), stopped with it. ``qa_workers = 0`` turns the quality checks off."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.qa_workers > 0 and self._task is None:
            self._task = asyncio.create_task(self._keep(), name="quality-worker")

    async def _keep(self) -> None:
        pause = 2.0
        log_file = self.settings.logs_dir / "qa-worker.log"
        while True:
            out = await asyncio.to_thread(_append, log_file)
            try:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "ivr", "qa", "worker", "--parent", str(os.getpid()),
                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT)
            finally:
                out.close()
            code = await self.process.wait()
            self.restarts += 1
            log.warning("quality worker exited (%s); restarting in %.0f s (%s)", code, pause, log_file)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 60.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
