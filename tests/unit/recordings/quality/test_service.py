"""The quality job over real recordings (a tmp recordings folder, its index and manifest) with a fake transcriber:
new recordings queued once, each call checked on its agent channel, flags on the index entry, the review list,
a restart resuming the queue, failures kept to their call."""

from __future__ import annotations

import io
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from ivr.recordings.index import RecordingIndex, Search
from ivr.recordings.library import RecordingLibrary
from ivr.recordings.manifest import Manifest
from ivr.recordings.quality.checks import TimedWord
from ivr.recordings.quality.jobs import MAX_ATTEMPTS, QualityJobs
from ivr.recordings.quality.service import ChecklistFile, QualityService
from ivr.recordings.quality.transcribe import agent_audio, agent_spans
from ivr.records.call import Outcome
from tests.unit.recordings.builders import answered_call, call_dict, write_raw

CHECKLIST = """\
every_queue:
  - {id: greeting, kind: greeting, phrases: [안녕하세요]}
  - {id: promises, kind: forbidden, text: 과장 권유, phrases: [원금 보장]}
"""


class FakeTranscriber:
    """Says ``script`` in every piece of audio it is given; keeps the pieces (to check which channel it heard)."""

    def __init__(self, script: str = "안녕하세요 이 상품은 원금 보장 됩니다", fail: bool = False) -> None:
        self.script, self.fail = script, fail
        self.pieces: list[tuple[bytes, int]] = []

    def transcribe(self, pcm: bytes, rate: int) -> list[TimedWord]:
        self.pieces.append((pcm, rate))
        if self.fail:
            raise RuntimeError("the model crashed")
        return [TimedWord(w, 1.0 + i * 0.5, 1.4 + i * 0.5) for i, w in enumerate(self.script.split())]


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.fixture
def service(tmp_path: Path) -> QualityService:
    library = RecordingLibrary(tmp_path / "recordings", RecordingIndex(tmp_path / "index.sqlite3"),
                               Manifest(tmp_path / "recordings" / "manifest.jsonl"), settle_s=0.0, wait_s=2)
    checklist = tmp_path / "qa-checklist.yaml"
    checklist.write_text(CHECKLIST, encoding="utf-8")
    return QualityService(library, QualityJobs(tmp_path / "quality.sqlite3"), ChecklistFile(checklist))


def recorded(service: QualityService, call_id: str, seconds: float = 20.0, **changes: object) -> None:
    """A call answered at 10 s and ended at 20 s (builders.answered_call), its stereo recording indexed."""
    call = answered_call(call_id, at=time.time() - 120)
    for name, value in changes.items():
        setattr(call, name, value)
    write_raw(service.library.recordings_dir, call, seconds)
    service.library.finalize(call_dict(call))


def test_each_new_recording_is_queued_once_and_checked_on_its_agent_channel(service: QualityService) -> None:
    recorded(service, "c-1")
    assert service.discover() == 1 and service.discover() == 0
    fake = FakeTranscriber()
    assert service.run_one(fake) == "c-1" and service.run_one(fake) is None
    # Only the agent's segment (10..20 s of the call), from the right channel (880 Hz; the caller's is 440 Hz).
    [(pcm, rate)] = fake.pieces
    assert rate == 8000 and len(pcm) == 10 * 8000 * 2 and dominant_hz(pcm, rate) == pytest.approx(880, abs=2)
    state = service.jobs.state("c-1")
    assert state is not None and state["state"] == "done" and state["source"] == "agent channel"
    assert (state["score"], state["flagged"], state["audio_s"]) == (50, True, 10.0)
    # The flag is on the recording's index entry, at the call's moment: 10 s + the word's 1.0 + 3 * 0.5.
    row = service.library.entry("c-1")
    assert row.flags == [{"at_s": 12.5, "kind": "forbidden_phrase", "text": row.flags[0]["text"]}]
    assert "원금 보장" in row.flags[0]["text"]
    assert service.library.search(Search(flagged=True))[0] == 1
    # The review list has it with its moment; reading the recording was logged as the checks'.
    total, items = service.jobs.review()
    assert total == 1 and items[0].call_id == "c-1" and items[0].findings[0]["at_s"] == 12.5
    assert any(a.who == "quality-checks" and a.action == "transcribe" for a in service.library.index.access("c-1"))
    progress = service.progress()
    assert (progress["queued"], progress["done"], progress["flagged"], progress["checklist_error"]) == (0, 1, 1, None)


def test_a_clean_call_is_not_flagged_and_a_reviewers_own_flag_is_kept(service: QualityService) -> None:
    recorded(service, "c-2")
    service.library.set_flags("c-2", [{"at_s": 3, "kind": "note", "text": "customer upset"}])
    service.discover()
    service.run_one(FakeTranscriber("안녕하세요 무엇을 도와드릴까요"))
    state = service.jobs.state("c-2")
    assert state is not None and (state["score"], state["flagged"]) == (100, False)
    assert service.library.entry("c-2").flags == [{"at_s": 3.0, "kind": "note", "text": "customer upset"}]
    assert service.jobs.review() == (0, [])


def test_a_call_no_agent_answered_is_skipped(service: QualityService) -> None:
    recorded(service, "c-3", agent=None, answered_at=None, outcome=Outcome.ABANDONED, routing=[])
    service.discover()
    fake = FakeTranscriber()
    service.run_one(fake)
    state = service.jobs.state("c-3")
    assert state is not None and state["state"] == "skipped" and "no agent" in state["error"] and not fake.pieces


def test_a_restart_resumes_a_call_a_dead_worker_had_started(service: QualityService, tmp_path: Path) -> None:
    recorded(service, "c-4")
    service.discover()
    assert service.jobs.claim() is not None  # the worker died here, mid-call
    assert service.run_one(FakeTranscriber()) is None  # nothing else queued; the call is "running"
    restarted = QualityService(service.library, QualityJobs(tmp_path / "quality.sqlite3"), service.checklist)
    stop = threading.Event()
    worker = threading.Thread(target=restarted.work, args=(stop, FakeTranscriber()), kwargs={"poll_s": 0.05})
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (restarted.jobs.state("c-4") or {}).get("state") != "done":
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
    state = restarted.jobs.state("c-4")
    assert state is not None and state["state"] == "done" and state["attempts"] == 2


def test_a_failing_call_is_tried_again_then_given_up_without_stopping_others(service: QualityService) -> None:
    recorded(service, "c-5")
    service.discover()
    broken = FakeTranscriber(fail=True)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert service.run_one(broken) == "c-5"
        state = service.jobs.state("c-5")
        assert state is not None and state["attempts"] == attempt
    assert state["state"] == "failed" and "the model crashed" in state["error"]
    recorded(service, "c-6")
    service.discover()
    assert service.run_one(FakeTranscriber()) == "c-6"
    assert (service.jobs.state("c-6") or {}).get("state") == "done"


def test_a_broken_checklist_pauses_the_checks_and_says_why(service: QualityService) -> None:
    recorded(service, "c-7")
    service.discover()
    service.checklist.path.write_text(CHECKLIST.replace("[원금 보장]", '[{re: "원금("}]'), encoding="utf-8")
    assert service.run_one(FakeTranscriber()) is None
    assert (service.jobs.state("c-7") or {}).get("state") == "queued"
    error = service.progress()["checklist_error"]
    assert "every_queue[1].phrases[0]" in error and "not a valid regular expression" in error
    service.checklist.path.write_text(CHECKLIST, encoding="utf-8")
    assert service.run_one(FakeTranscriber()) == "c-7"


def test_a_missing_recording_fails_its_call_at_once(service: QualityService) -> None:
    recorded(service, "c-8")
    service.discover()
    (service.library.recordings_dir / service.library.entry("c-8").path).unlink()
    service.run_one(FakeTranscriber())
    state = service.jobs.state("c-8")
    assert state is not None and state["state"] == "failed" and "missing" in state["error"]


def test_a_mono_recording_is_transcribed_whole_as_the_mix() -> None:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(8000 * 2 * 4))
    audio = agent_audio(out.getvalue(), agent_spans({"segments": []}, 4.0, answered=True))
    assert (audio.source, audio.spans, len(audio.pcm)) == ("mono mix", ((0.0, 4.0),), 8000 * 2 * 4)
    with pytest.raises(ValueError, match="not a WAV"):
        agent_audio(b"garbage", ())
