"""The real transcriber: Vosk free dictation of an espeak-ng agent utterance in a stereo call recording, checked
against a checklist and flagged at the moment the agent said it, not when the caller did.

Free dictation of espeak-ng's Korean is far from what was written ("이 상품은 원금 보장이 됩니다" is heard as
"이 보험을 화기 필름 번역 이 모의 니다" after one silence, "이 홈 [1] 렙 번역 이 노해 니다" after another), so
the test relies only on what the model hears surely: the polite ending "니다" closing each sentence (heard in 23
of 24 silence/shift variants of one sentence, offline; three sentences here). What is under test is the pipeline:
the agent channel of a real MixMonitor file, Vosk's word times moved onto the call's clock, the match, the flag.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bench.common import spoken_8k
from ivr.recordings.index import RecordingIndex
from ivr.recordings.library import RecordingLibrary
from ivr.recordings.manifest import Manifest
from ivr.recordings.quality.jobs import QualityJobs
from ivr.recordings.quality.service import ChecklistFile, QualityService
from ivr.recordings.quality.transcribe import VoskTranscriber
from tests.unit.recordings.builders import answered_call, call_dict

RATE = 8000
AGENT = "원금 보장이 됩니다. 무조건 수익이 납니다. 걱정 없습니다."
CALLER = "정말입니까. 알겠습니다."
CHECKLIST = "every_queue:\n  - {id: ending, kind: forbidden, text: 문장 끝, phrases: [{re: 니다}]}\n"


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype="<i2")


def test_the_agents_words_are_flagged_at_their_moment_on_the_agent_channel(tmp_path: Path) -> None:
    agent = np.frombuffer(spoken_8k(AGENT), dtype="<i2")
    caller = np.frombuffer(spoken_8k(CALLER), dtype="<i2")
    agent_s, caller_s = len(agent) / RATE, len(caller) / RATE
    # IVR 10 s (the caller speaks at 1 s), then the agent: 0.5 s, the agent's sentences, then the caller speaks
    # while the agent is silent. Flags from the wrong channel, or a wrong clock, would land outside the agent's words.
    right = np.concatenate([silence(10.5), agent, silence(caller_s + 1.5)])
    left = np.zeros_like(right)
    left[RATE: RATE + len(caller)] = caller
    caller_from = 10.5 + agent_s + 0.5
    left[int(caller_from * RATE): int(caller_from * RATE) + len(caller)] = caller
    seconds = len(right) / RATE

    call = answered_call("v-1", at=time.time() - 120)
    call.answered_at, call.ended_at = call.started_at + 10.0, call.started_at + seconds
    day = time.strftime("%Y-%m-%d", time.localtime(call.started_at))
    raw = tmp_path / "recordings" / "calls" / day / "v-1.raw"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(np.stack([left, right], axis=1).astype("<i2").tobytes())  # MixMonitor's D: L/R interleaved
    library = RecordingLibrary(tmp_path / "recordings", RecordingIndex(tmp_path / "index.sqlite3"),
                               Manifest(tmp_path / "recordings" / "manifest.jsonl"), settle_s=0.0, wait_s=2)
    library.finalize(call_dict(call))
    checklist = tmp_path / "qa-checklist.yaml"
    checklist.write_text(CHECKLIST, encoding="utf-8")
    service = QualityService(library, QualityJobs(tmp_path / "quality.sqlite3"), ChecklistFile(checklist))

    assert service.discover() == 1
    assert service.run_one(VoskTranscriber("ko")) == "v-1"
    state = service.jobs.state("v-1")
    assert state is not None and state["state"] == "done", state
    assert state["source"] == "agent channel" and state["audio_s"] == pytest.approx(seconds - 10.0, abs=0.05)
    transcript = state["result"]["transcript"]
    flags = library.entry("v-1").flags
    assert flags, f"the model heard no sentence ending in the agent's {AGENT!r}: {transcript!r}"
    assert {f["kind"] for f in flags} == {"forbidden_phrase"}
    # Every flag inside the agent's sentences (Vosk's word starts: within a few hundred ms of the audio).
    assert all(10.5 <= f["at_s"] <= 10.5 + agent_s + 0.3 for f in flags), (flags, agent_s, transcript)
    assert state["cpu_s"] > 0 and state["result"]["words"] >= len(flags)
